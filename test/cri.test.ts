// Kubernetes' view of the shim: containerd 1.6's CRI plugin, driven over its gRPC socket as kubelet
// drives it (runtime.v1 RuntimeService and ImageService; no kubelet, no network: host-network
// pods), runs pods on the runtime handler `tsrunc` registered by exactly the snippet
// `scripts/install --print-config` prints. Every scenario also runs with Debian's Go shim
// (handler `runc`, io.containerd.runc.v2) as the control.
import * as fs from "node:fs";
import * as path from "node:path";
import t from "tap";
import { assertNoLeaks } from "./helpers/cleanup.js";
import type { Msg } from "./helpers/cri/client.js";
import { openK8sStream } from "./helpers/cri/k8s-stream.js";
import {
  BUSYBOX_IMAGE,
  buildCriImages,
  type CriNode,
  cgroupOf,
  type Handler,
  installedCriSnippet,
  K8S_NAMESPACE,
  SANDBOX_IMAGE,
  SHIM_BINARY,
  shimProcesses,
  startCriNode,
} from "./helpers/cri/node.js";
import { alive } from "./helpers/shim.js";
import { waitFor } from "./helpers/wait.js";

const HANDLERS: Handler[] = ["tsrunc", "runc"];
/** Every CRI method called through our shim's handler, printed at the end (the report's list). */
const calledOnOurs = new Set<string>();

let snippet = "";
let archive = "";
t.before(async () => {
  snippet = await installedCriSnippet();
  archive = await buildCriImages(t);
});

t.test("the snippet scripts/install prints registers the handler tsrunc", async (t) => {
  t.match(snippet, /^\[plugins\."io\.containerd\.grpc\.v1\.cri"\.containerd\.runtimes\.tsrunc\]$/m);
  t.match(snippet, /^\s*runtime_type = "io\.containerd\.tsrunc\.v2"$/m);
  const readme = fs.readFileSync(
    path.join(import.meta.dirname, "../../packages/shim-runc-v2/README.md"),
    "utf8",
  );
  t.ok(readme.includes(snippet.trim()), "the shim README's Kubernetes section shows the same snippet");
});

function podConfig(node: CriNode, name: string): Msg {
  const uid = `${name}-${node.cd.namespace}`;
  const logDir = path.join(node.logRoot, name);
  fs.mkdirSync(logDir, { recursive: true });
  return {
    metadata: { name, uid, namespace: "default", attempt: 0 },
    // No hostname: kubelet sets none for host-network pods (there is no UTS namespace to set it in).
    log_directory: logDir,
    labels: { app: name },
    linux: {
      // The cgroup parent is the harness namespace's cgroup, which its sweep owns.
      cgroup_parent: `/${node.cd.namespace}`,
      security_context: { namespace_options: { network: "NODE", pid: "CONTAINER", ipc: "POD" } },
    },
  };
}

/** A container of its own pid namespace (kubelet's default), or of the pod's with pid "POD". */
function containerConfig(name: string, command: string[], extra: Msg = {}, pid = "CONTAINER"): Msg {
  return {
    metadata: { name, attempt: 0 },
    image: { image: BUSYBOX_IMAGE },
    command,
    log_path: `${name}.log`,
    labels: { container: name },
    linux: { security_context: { namespace_options: { pid } } },
    ...extra,
  };
}

async function runPod(node: CriNode, name: string): Promise<{ podId: string; config: Msg }> {
  const config = podConfig(node, name);
  const r = await node.cri.runtime("RunPodSandbox", { config, runtime_handler: node.handler }, 120_000);
  return { podId: r.pod_sandbox_id, config };
}

async function createAndStart(node: CriNode, podId: string, podConfig: Msg, config: Msg): Promise<string> {
  const c = await node.cri.runtime(
    "CreateContainer",
    { pod_sandbox_id: podId, config, sandbox_config: podConfig },
    120_000,
  );
  await node.cri.runtime("StartContainer", { container_id: c.container_id }, 120_000);
  return c.container_id;
}

/** ContainerStatus (verbose), with the pid from its info. */
async function status(node: CriNode, id: string): Promise<{ status: Msg; pid: number }> {
  const r = await node.cri.runtime("ContainerStatus", { container_id: id, verbose: true });
  const info = r.info?.info ? JSON.parse(r.info.info) : {};
  return { status: r.status, pid: Number(info.pid ?? 0) };
}

function shimCount(node: CriNode): number {
  return shimProcesses(node.cd.grpcAddress, SHIM_BINARY[node.handler]).length;
}

/** The bundles' address files: every container of a pod names one shim. */
function addresses(node: CriNode, ids: string[]): Set<string> {
  return new Set(
    ids.map((id) => fs.readFileSync(path.join(node.cd.bundleDir(id, K8S_NAMESPACE), "address"), "utf8")),
  );
}

const TICKER = ["sh", "-c", "while true; do echo tick; sleep 1; done"];
// Ignores TERM, and leaves a child behind: run in the pod's pid namespace (a pod with
// shareProcessNamespace), its init's death does not end the child — the shim must.
const STUBBORN = ["sh", "-c", "trap '' TERM; sleep 1000 & echo started; while true; do sleep 1; done"];

for (const handler of HANDLERS) {
  t.test(`pod lifecycle through CRI on handler ${handler}`, async (t) => {
    const node = await startCriNode(t, handler, snippet, archive);
    const { cri, cd } = node;
    const version = await cri.runtime("Version", { version: "v1" });
    t.equal(version.runtime_api_version, "v1", `CRI ${version.runtime_name} ${version.runtime_version}`);
    const st = await cri.runtime("Status", {});
    t.ok(
      st.status.conditions.some((c: Msg) => c.type === "RuntimeReady" && c.status),
      "RuntimeReady (NetworkReady may be false: no CNI config, host-network pods only)",
    );
    const images = await cri.image("ListImages", {});
    const tags = images.images.flatMap((i: Msg) => i.repo_tags);
    t.ok(tags.includes(SANDBOX_IMAGE) && tags.includes(BUSYBOX_IMAGE), "ListImages shows both images");

    const { podId, config: podCfg } = await runPod(node, "web");
    const pod = await cri.runtime("PodSandboxStatus", { pod_sandbox_id: podId });
    t.equal(pod.status.state, "SANDBOX_READY", "sandbox ready");
    t.equal(pod.status.linux.namespaces.options.network, "NODE", "host network");

    const ticker = await createAndStart(node, podId, podCfg, containerConfig("ticker", TICKER));
    const stubborn = await createAndStart(
      node,
      podId,
      podCfg,
      containerConfig("stubborn", STUBBORN, {}, "POD"),
    );
    const echo = await createAndStart(
      node,
      podId,
      podCfg,
      containerConfig("echo", ["cat"], { stdin: true, stdin_once: false }),
    );
    const ids = [ticker, stubborn, echo];

    // RUNNING, with pids that are the containers' own processes.
    for (const [id, cmd] of [
      [ticker, "sh"],
      [stubborn, "sh"],
      [echo, "cat"],
    ] as const) {
      const s = await status(node, id);
      t.equal(s.status.state, "CONTAINER_RUNNING", `${s.status.metadata.name} RUNNING`);
      t.ok(s.pid > 0 && alive(s.pid), `${s.status.metadata.name}: pid ${s.pid} alive`);
      t.match(cgroupOf(s.pid, "memory") ?? "", new RegExp(`/${id}$`), "in the container's own cgroup");
      // runc start returns once the init is told to exec: it may still be `runc init` a moment.
      const argv0 = await waitFor(
        () => {
          const a = path.basename(fs.readFileSync(`/proc/${s.pid}/cmdline`, "utf8").split("\0")[0] ?? "");
          return a === cmd ? a : undefined;
        },
        { what: `pid ${s.pid} to run ${cmd}`, timeoutMs: 10_000 },
      ).catch((e: Error) => e.message);
      t.equal(argv0, cmd, `runs ${cmd}`);
    }
    const listed = await cri.runtime("ListContainers", {
      filter: { pod_sandbox_id: podId, state: { state: "CONTAINER_RUNNING" } },
    });
    t.same(listed.containers.map((c: Msg) => c.id).sort(), [...ids].sort(), "ListContainers: three RUNNING");
    const pods = await cri.runtime("ListPodSandbox", {});
    t.same(
      pods.items.map((p: Msg) => [p.id, p.state, p.runtime_handler]),
      [[podId, "SANDBOX_READY", handler]],
      "ListPodSandbox: the pod, on its handler",
    );

    // One shim process for the pod: the sandbox and its three containers share it.
    t.equal(shimCount(node), 1, `one ${SHIM_BINARY[handler]} process for the pod`);
    t.equal(addresses(node, [podId, ...ids]).size, 1, "every bundle names the same shim address");

    // ExecSync: stdout, stderr, exit code; a timeout.
    const ex = await cri.runtime("ExecSync", {
      container_id: ticker,
      cmd: ["sh", "-c", "echo out; echo err >&2; exit 3"],
      timeout: 30,
    });
    t.same(
      [String(ex.stdout), String(ex.stderr), ex.exit_code],
      ["out\n", "err\n", 3],
      "ExecSync: stdout, stderr, exit 3",
    );
    const t0 = Date.now();
    const timedOut = await cri
      .runtime("ExecSync", { container_id: ticker, cmd: ["sleep", "60"], timeout: 1 })
      .then(
        () => undefined,
        (e: Error) => e,
      );
    t.match(timedOut?.message ?? "resolved", /timeout 1s exceeded/, "ExecSync past its timeout fails");
    t.ok(Date.now() - t0 < 30_000, `and returns soon (${Date.now() - t0} ms): the exec was killed`);
    const after = await cri.runtime("ExecSync", { container_id: ticker, cmd: ["ps"], timeout: 10 });
    t.notMatch(String(after.stdout), /sleep 60/, "the timed-out exec is gone");

    // Exec and Attach through the CRI streaming server, as kubectl speaks it (websocket).
    const { url: execUrl } = await cri.runtime("Exec", {
      container_id: ticker,
      cmd: ["sh", "-c", "read line; echo got:$line; echo to-stderr >&2; exit 5"],
      stdin: true,
      stdout: true,
      stderr: true,
    });
    t.match(execUrl, /^http:\/\/127\.0\.0\.1:\d+\/exec\//, "Exec returns a loopback streaming URL");
    const execStream = await openK8sStream(execUrl);
    execStream.write("hello\n");
    const execResult = await execStream.done;
    t.same(
      [execResult.stdout, execResult.stderr, execResult.exitCode],
      ["got:hello\n", "to-stderr\n", 5],
      `streamed exec: stdin, stdout, stderr, exit code (${execResult.status})`,
    );
    const { url: attachUrl } = await cri.runtime("Attach", { container_id: echo, stdin: true, stdout: true });
    t.match(attachUrl, /^http:\/\/127\.0\.0\.1:\d+\/attach\//, "Attach returns a loopback streaming URL");
    const attach = await openK8sStream(attachUrl);
    attach.write("ping\n");
    await attach.waitStdout("ping\n");
    await attach.close();
    t.pass("attach: what went to the container's stdin came back on its stdout");
    t.equal((await status(node, echo)).status.state, "CONTAINER_RUNNING", "detaching leaves it running");

    // UpdateContainerResources reaches the container's cgroup.
    const { pid: tickerPid } = await status(node, ticker);
    await cri.runtime("UpdateContainerResources", {
      container_id: ticker,
      linux: {
        cpu_shares: 512,
        memory_limit_in_bytes: 96 * 1024 * 1024,
        cpu_period: 100000,
        cpu_quota: 50000,
      },
    });
    const cg = (ctrl: string, file: string) =>
      fs
        .readFileSync(path.join("/sys/fs/cgroup", ctrl, cgroupOf(tickerPid, ctrl) ?? "/nope", file), "utf8")
        .trim();
    t.equal(cg("memory", "memory.limit_in_bytes"), String(96 * 1024 * 1024), "memory limit set");
    t.equal(cg("cpu", "cpu.shares"), "512", "cpu shares set");
    t.equal(cg("cpu", "cpu.cfs_quota_us"), "50000", "cpu quota set");

    // ContainerStats from the shim's cgroup metrics.
    const stats = await cri.runtime("ContainerStats", { container_id: ticker });
    t.ok(Number(stats.stats.cpu.usage_core_nano_seconds?.value) > 0, "ContainerStats: cpu usage");
    t.ok(Number(stats.stats.memory.working_set_bytes?.value) > 0, "ContainerStats: memory working set");

    // The container's stdout reached the CRI log file (CRI's format: time stream tag text).
    const logFile = path.join(podCfg.log_directory, "ticker.log");
    const log = await waitFor(
      () => {
        const s = fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8") : "";
        return / stdout F tick$/m.test(s) ? s : undefined;
      },
      { what: "tick in the CRI log", timeoutMs: 20_000 },
    );
    t.match(log, / stdout F tick/, "CRI log has the container's output");

    // A container that ends on its own: all of its output is in the CRI log, the exit code kept.
    const finisher = await createAndStart(
      node,
      podId,
      podCfg,
      containerConfig("finisher", [
        "sh",
        "-c",
        "sleep 1; i=0; while [ $i -lt 300 ]; do i=$((i+1)); echo line$i; done; echo bye >&2; exit 7",
      ]),
    );
    const ended = await waitFor(
      async () => {
        const s = await status(node, finisher);
        return s.status.state === "CONTAINER_EXITED" ? s.status : undefined;
      },
      { what: "finisher EXITED", timeoutMs: 30_000, intervalMs: 100 },
    );
    t.equal(ended.exit_code, 7, "finisher EXITED with its exit code 7");
    const finLog = fs.readFileSync(path.join(podCfg.log_directory, "finisher.log"), "utf8");
    t.equal(finLog.match(/ stdout F line\d+$/gm)?.length, 300, "all 300 lines of stdout in the CRI log");
    t.match(finLog, / stderr F bye$/m, "and its stderr");
    await cri.runtime("RemoveContainer", { container_id: finisher });

    // StopContainer with a grace period: TERM is ignored, KILL after 2 s.
    const stubbornPid = (await status(node, stubborn)).pid;
    const stubbornCg = path.join("/sys/fs/cgroup/memory", cgroupOf(stubbornPid, "memory") ?? "/nope");
    const procsOf = () => {
      try {
        return fs
          .readFileSync(path.join(stubbornCg, "cgroup.procs"), "utf8")
          .split("\n")
          .filter(Boolean)
          .map(Number);
      } catch {
        return [];
      }
    };
    const stubbornProcs = await waitFor(() => (procsOf().length >= 3 ? procsOf() : undefined), {
      what: "stubborn's init, its sleep 1000 and a sleep 1",
    });
    const s0 = Date.now();
    await cri.runtime("StopContainer", { container_id: stubborn, timeout: 2 }, 60_000);
    const took = Date.now() - s0;
    t.ok(took >= 1900, `StopContainer waited out the grace period (${took} ms)`);
    t.same(
      stubbornProcs.filter(alive),
      [],
      "none of its processes outlives the stop (pod pid namespace: the shim kills what the init left)",
    );
    const stopped = await status(node, stubborn);
    t.equal(stopped.status.state, "CONTAINER_EXITED", "stubborn EXITED");
    t.equal(stopped.status.exit_code, 137, "killed by KILL: 137");
    await cri.runtime("RemoveContainer", { container_id: stubborn });
    const left = await cri.runtime("ListContainers", { filter: { pod_sandbox_id: podId } });
    t.same(left.containers.map((c: Msg) => c.id).sort(), [ticker, echo].sort(), "RemoveContainer: two left");
    t.equal(shimCount(node), 1, "the pod's shim serves the rest");

    // StopPodSandbox stops the rest; RemovePodSandbox removes everything, the shim exits.
    await cri.runtime("StopPodSandbox", { pod_sandbox_id: podId }, 120_000);
    const stoppedPod = await cri.runtime("PodSandboxStatus", { pod_sandbox_id: podId });
    t.equal(stoppedPod.status.state, "SANDBOX_NOTREADY", "sandbox NOTREADY");
    for (const id of [ticker, echo])
      t.equal((await status(node, id)).status.state, "CONTAINER_EXITED", `${id.slice(0, 12)} EXITED`);
    await cri.runtime("RemovePodSandbox", { pod_sandbox_id: podId }, 120_000);
    t.same((await cri.runtime("ListPodSandbox", {})).items, [], "no pods");
    t.same((await cri.runtime("ListContainers", {})).containers, [], "no containers");
    await waitFor(() => shimCount(node) === 0, { what: "the pod's shim to exit", timeoutMs: 30_000 });
    t.equal(shimCount(node), 0, "no shim left after removal");
    t.same(
      fs.readdirSync(path.dirname(cd.bundleDir("x", K8S_NAMESPACE))),
      [],
      "no bundle left in containerd's state",
    );
    // CRI reads each container's output until EOF; a stream it had to cut (its fifo still held
    // open by processes the init left behind, when the shim reported the exit) it logs as
    // "Failed to pipe stdout of container …: file already closed".
    const cut = fs.readFileSync(cd.logPath, "utf8").match(/Failed to pipe \w+ of container/g) ?? [];
    t.same(cut, [], "CRI read every container's output to its end");
    if (handler === "tsrunc") for (const c of cri.called) calledOnOurs.add(c);
    await cd.stop();
    assertNoLeaks(t, cd.scope);
  });

  t.test(`containerd and the pod's shim SIGKILLed on handler ${handler}`, async (t) => {
    const node = await startCriNode(t, handler, snippet, archive);
    const { cri, cd } = node;
    const { podId, config: podCfg } = await runPod(node, "db");
    const a = await createAndStart(node, podId, podCfg, containerConfig("a", TICKER));
    const b = await createAndStart(node, podId, podCfg, containerConfig("b", STUBBORN));
    const before = new Map<string, number>();
    for (const id of [a, b]) before.set(id, (await status(node, id)).pid);
    const shims = shimProcesses(cd.grpcAddress, SHIM_BINARY[handler]);
    t.equal(shims.length, 1, "one shim for the pod");

    // containerd SIGKILLed and started again: the pod and its containers come back RUNNING.
    await cd.kill9();
    t.ok(alive(shims[0]?.pid ?? 0), "the shim outlives containerd");
    await cd.restart();
    const pods = await waitFor(
      async () => {
        const r = await cri.runtime("ListPodSandbox", {}, 5000);
        return r.items.length ? r.items : undefined;
      },
      { what: "CRI to list the pod again", timeoutMs: 60_000 },
    );
    t.same(
      pods.map((p: Msg) => [p.id, p.state]),
      [[podId, "SANDBOX_READY"]],
      "the pod is READY after the restart",
    );
    for (const id of [a, b]) {
      const s = await status(node, id);
      t.equal(s.status.state, "CONTAINER_RUNNING", `${s.status.metadata.name} RUNNING after the restart`);
      t.equal(s.pid, before.get(id), "same pid");
    }
    const ex = await cri.runtime("ExecSync", { container_id: a, cmd: ["echo", "still here"], timeout: 30 });
    t.equal(String(ex.stdout), "still here\n", "exec works through the reconnected shim");
    t.same(
      shimProcesses(cd.grpcAddress, SHIM_BINARY[handler]).map((p) => p.pid),
      shims.map((p) => p.pid),
      "the same shim process",
    );

    // The pod's shim SIGKILLed: CRI reports the containers exited; removal cleans everything.
    for (const p of shims) process.kill(p.pid, "SIGKILL");
    for (const id of [a, b]) {
      await waitFor(async () => (await status(node, id)).status.state === "CONTAINER_EXITED", {
        what: `${id.slice(0, 12)} EXITED after the shim died`,
        timeoutMs: 60_000,
        intervalMs: 200,
      });
      const s = await status(node, id);
      // containerd 1.6 publishes the exit of a dead shim's task with status 255, whatever the
      // shim's `delete` says (same with the Go shim).
      t.equal(s.status.exit_code, 255, `${s.status.metadata.name} EXITED, 255 (its shim died)`);
    }
    await waitFor(
      async () =>
        (await cri.runtime("PodSandboxStatus", { pod_sandbox_id: podId })).status.state ===
        "SANDBOX_NOTREADY",
      { what: "the sandbox NOTREADY", timeoutMs: 60_000, intervalMs: 200 },
    );
    t.pass("sandbox NOTREADY");
    for (const pid of before.values()) {
      await waitFor(() => !alive(pid), { what: `container process ${pid} gone`, timeoutMs: 30_000 });
    }
    t.pass("the containers' processes are gone");
    await cri.runtime("StopPodSandbox", { pod_sandbox_id: podId }, 120_000);
    await cri.runtime("RemovePodSandbox", { pod_sandbox_id: podId }, 120_000);
    t.same((await cri.runtime("ListPodSandbox", {})).items, [], "no pods");
    t.same((await cri.runtime("ListContainers", {})).containers, [], "no containers");
    // The `delete` containerd ran for each task of the dead shim may still be finishing.
    const lingering = await waitFor(() => shimCount(node) === 0, {
      what: "no shim process",
      timeoutMs: 30_000,
    }).catch(() => shimProcesses(cd.grpcAddress, SHIM_BINARY[handler]).map((p) => p.argv.join(" ")));
    t.equal(lingering, true, "no shim process left");
    if (handler === "tsrunc") for (const c of cri.called) calledOnOurs.add(c);
    await cd.stop();
    assertNoLeaks(t, cd.scope);
  });
}

t.test("the snippet's runc options (ConfigPath) reach our shim", async (t) => {
  // What the snippet shows commented out, switched on, its file in the temp root.
  const on = snippet
    .replace(/^ {2}#(\[plugins\..*\.runtimes\.tsrunc\.options\])$/m, "  $1")
    .replace(/^ {2}# {2}ConfigPath = ".*"$/m, '    ConfigPath = "@ROOT@/tsrunc-runc.toml"');
  t.not(on, snippet, "the snippet has the options table to switch on");
  t.match(on, /^ {4}ConfigPath = "@ROOT@\/tsrunc-runc\.toml"$/m);
  const node = await startCriNode(t, "tsrunc", on, archive);
  const { cri, cd } = node;
  const root = path.join(cd.root, "runc-from-options");
  const runc = fs.realpathSync("/usr/sbin/runc");
  fs.writeFileSync(
    path.join(cd.root, "tsrunc-runc.toml"),
    `# runc options for tsrunc\nBinaryName = "${runc}"\nRoot = "${root}"\nSystemdCgroup = false\n`,
  );
  const { podId, config: podCfg } = await runPod(node, "opts");
  const c = await createAndStart(node, podId, podCfg, containerConfig("c", TICKER));
  for (const id of [podId, c]) {
    t.ok(
      fs.existsSync(path.join(root, K8S_NAMESPACE, id, "state.json")),
      `runc state of ${id.slice(0, 12)} under Root`,
    );
  }
  t.equal((await status(node, c)).status.state, "CONTAINER_RUNNING", "RUNNING");
  await cri.runtime("StopPodSandbox", { pod_sandbox_id: podId }, 120_000);
  await cri.runtime("RemovePodSandbox", { pod_sandbox_id: podId }, 120_000);
  await waitFor(() => shimCount(node) === 0, { what: "the pod's shim to exit", timeoutMs: 30_000 });
  t.same(fs.readdirSync(path.join(root, K8S_NAMESPACE)), [], "runc state removed");
  await cd.stop();
  assertNoLeaks(t, cd.scope);
});

t.teardown(() => {
  if (calledOnOurs.size) t.comment(`CRI calls exercised on tsrunc: ${[...calledOnOurs].sort().join(", ")}`);
});
