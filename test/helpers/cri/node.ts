// A Kubernetes node in miniature for the CRI tests: a private containerd with its CRI plugin on,
// configured as a node admin would (the runtime handler `tsrunc` from exactly what
// `scripts/install --print-config` prints, the Go shim's `runc` as the control), the sandbox and
// container images imported into the k8s.io namespace, and a CRI client on its socket.
import * as fs from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { execa } from "execa";
import { type Containerd, startContainerd, type TestLike } from "../containerd.js";
import { buildBusyboxImageArchive } from "../image.js";
import { containerdWithOurShim, REPO } from "../our-shim.js";
import { alive } from "../shim.js";
import { waitFor } from "../wait.js";
import { type CriClient, criClient } from "./client.js";

/** containerd's namespace for everything CRI makes. */
export const K8S_NAMESPACE = "k8s.io";
/** The sandbox ("pause") image the CRI config names: busybox whose entrypoint sleeps. */
export const SANDBOX_IMAGE = "tsrunc.test/pause:1";
/** The image the containers run (the same layer; commands are always given). */
export const BUSYBOX_IMAGE = "tsrunc.test/busybox:1";

export type Handler = "tsrunc" | "runc";
/** The shim binary behind each handler, as it shows in the process table. */
export const SHIM_BINARY: Record<Handler, string> = {
  tsrunc: "containerd-shim-tsrunc-v2",
  runc: "containerd-shim-runc-v2",
};

/**
 * The containerd config.toml snippet `scripts/install --print-config` prints (run with a
 * throwaway prefix): the TOML after the installed shim's path it prints first.
 */
export async function installedCriSnippet(): Promise<string> {
  const prefix = await mkdtemp(path.join(tmpdir(), "tsrunc-cri-install-"));
  try {
    const r = await execa(path.join(REPO, "scripts/install"), ["--print-config", "--launcher", prefix], {
      reject: false,
    });
    if (r.exitCode !== 0)
      throw new Error(`scripts/install --print-config failed (build first?): ${r.stderr}`);
    const lines = String(r.stdout).split("\n");
    const first = lines.findIndex((l) => l.startsWith("#") || l.startsWith("["));
    if (first < 1) throw new Error(`scripts/install --print-config printed no snippet:\n${r.stdout}`);
    return `${lines.slice(first).join("\n")}\n`;
  } finally {
    await rm(prefix, { recursive: true, force: true });
  }
}

/**
 * The CRI plugin's settings for a private containerd (`@ROOT@` is its temp root): the plugin's
 * own root and state are <containerd root|state>/io.containerd.grpc.v1.cri, inside it already.
 * OOM scores cannot be lowered on this machine (runc fails with "can't get final child's PID
 * from pipe: EOF" on the -998 CRI gives sandboxes), hence restrict_oom_score_adj. The Go shim's
 * runc root is put in the temp root through its runc options, ours through TSRUNC_RUNC_ROOT.
 */
export function criPluginConfig(snippet: string): string {
  const cri = `plugins."io.containerd.grpc.v1.cri"`;
  return `[${cri}]
  sandbox_image = "${SANDBOX_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_tcp_service = true
  enable_selinux = false
  disable_apparmor = true
  disable_cgroup = false
  restrict_oom_score_adj = true
  [${cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [${cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [${cri}.containerd.runtimes.runc.options]
        Root = "@ROOT@/runc-go"
  [${cri}.cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "@ROOT@/cni/net.d"

# --- scripts/install --print-config ---
${snippet}`;
}

export interface CriNode {
  cd: Containerd;
  cri: CriClient;
  handler: Handler;
  /** Where pods' logs go (PodSandboxConfig.log_directory is a directory below it). */
  logRoot: string;
}

/**
 * Starts the private containerd with CRI for `handler`, imports the image archive (built once
 * per test file with buildCriImages) into k8s.io and waits until the CRI plugin answers.
 */
export async function startCriNode(
  t: TestLike,
  handler: Handler,
  snippet: string,
  imageArchive: string,
): Promise<CriNode> {
  const opts = {
    cri: criPluginConfig(snippet),
    env: { TSRUNC_RUNC_ROOT: "@ROOT@/runc-ts" },
    readyTimeoutMs: 60_000,
  };
  const cd = handler === "tsrunc" ? await containerdWithOurShim(t, opts) : await startContainerd(t, opts);
  fs.mkdirSync(path.join(cd.root, "cni", "net.d"), { recursive: true });
  const logRoot = path.join(cd.root, "pod-logs");
  fs.mkdirSync(logRoot);
  const cri = criClient(cd.grpcAddress);
  t.teardown(() => {
    cri.close();
    // A failed test keeps containerd's last lines (its shims' logs included) where it can be read.
    if (!t.passing()) {
      const keep = path.join(tmpdir(), `tsrunc-cri-failure-${path.basename(cd.root)}.log`);
      fs.writeFileSync(keep, cd.logTail(600));
      process.stderr.write(`cri test failed: containerd's log tail in ${keep}\n`);
    }
  });
  await waitFor(
    async () => {
      try {
        await cri.runtime("Version", { version: "v1" }, 5000);
        return true;
      } catch {
        return undefined;
      }
    },
    { what: "the CRI plugin to answer", timeoutMs: 60_000 },
  );
  const r = await cd.ctr(["image", "import", imageArchive], { namespace: K8S_NAMESPACE, timeout: 60_000 });
  if (r.exitCode !== 0) throw new Error(`${r.command}: ${r.stderr}`);
  // CRI learns of images from containerd's image events.
  await waitFor(
    async () => {
      const s = await cri.image("ImageStatus", { image: { image: SANDBOX_IMAGE } });
      const b = await cri.image("ImageStatus", { image: { image: BUSYBOX_IMAGE } });
      return s.image && b.image ? true : undefined;
    },
    { what: "CRI to see the imported images", timeoutMs: 30_000 },
  );
  return { cd, cri, handler, logRoot };
}

/** Builds the one image archive (both refs, one manifest) every node of the file imports. */
export async function buildCriImages(t: TestLike): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "tsrunc-cri-img-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const archive = path.join(dir, "images.tar");
  await buildBusyboxImageArchive(dir, archive, [SANDBOX_IMAGE, BUSYBOX_IMAGE], {
    config: { Entrypoint: ["/bin/sleep", "1000000000"], Env: ["PATH=/bin"] },
  });
  return archive;
}

export interface ProcInfo {
  pid: number;
  argv: string[];
}

/** Live (non-zombie) processes whose command line names `binary` and containerd's grpc address. */
export function shimProcesses(grpcAddress: string, binary: string): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0");
      if (!alive(Number(d))) continue;
      if (argv.some((a) => path.basename(a) === binary) && argv.includes(grpcAddress)) {
        out.push({ pid: Number(d), argv });
      }
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The process's cgroup path in the v1 hierarchy of `controller` (e.g. "memory"). */
export function cgroupOf(pid: number, controller: string): string | undefined {
  try {
    for (const line of fs.readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n")) {
      const [, ctrls, p] = line.split(":");
      if (ctrls?.split(",").includes(controller)) return p;
    }
  } catch {
    // gone
  }
  return undefined;
}
