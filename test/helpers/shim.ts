// Drives our shim binary directly, without containerd: builds a bundle (runc spec + busybox
// rootfs), stands in for containerd's event socket with our own ttrpc Events server, runs
// `containerd-shim-tsrunc-v2 start`, and connects a typed Task client to the address it prints.
// Everything lives in the test's temp root (sockets, runc state), so the harness's sweep removes
// whatever a failing test leaves.
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { Socket } from "node:net";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { EventsTtrpcService, type TaskService, type ttrpcevents } from "@tsrunc/protocol";
import { BundleFile, connectShim, runShimStart } from "@tsrunc/shim-contract";
import type { Client, ClientStub } from "@tsrunc/ttrpc";
import { Server } from "@tsrunc/ttrpc";
import { execa } from "execa";
import type { TestLike } from "./cleanup.js";
import { makeBusyboxRootfs } from "./rootfs.js";
import { type TempRoot, tempRoot } from "./temp-root.js";

export const SHIM_BIN = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "../../../packages/shim-runc-v2/dist/bin/containerd-shim-tsrunc-v2",
);

export interface ShimEnv {
  root: TempRoot;
  namespace: string;
  /** What the shim takes as containerd's address (only hashed into the socket path here). */
  address: string;
  env: Record<string, string>;
  events: ttrpcevents.Envelope[];
  /** A bundle for container `id`, with config.json running `args`. */
  bundle(id: string, args: string[], edit?: (spec: Record<string, unknown>) => void): Promise<string>;
  /** Runs the shim's `start` in `bundle`; returns the address and a connected Task client. */
  start(
    bundle: string,
    id: string,
    stdin?: Uint8Array,
  ): Promise<{ address: string; task: ClientStub<typeof TaskService>; client: Client }>;
  /** A fifo at `<root>/fifo/<name>` with a reader attached (as ctr does before Create). */
  fifoReader(name: string): Promise<{ path: string; text: Promise<string> }>;
  /** A fifo at `<root>/fifo/<name>` that the test writes to. */
  fifoWriter(name: string): Promise<{ path: string; open(): Socket }>;
  shimPids(): number[];
  /** What the shims have logged so far (their bundles' log fifos). */
  logs(): string;
}

export async function shimEnv(t: TestLike): Promise<ShimEnv> {
  const root = tempRoot(t);
  const namespace = `t${randomBytes(5).toString("hex")}`;
  root.scope.namespaces.push(namespace);
  root.scope.runcRoots.push(path.join(root.path, "runc", namespace));
  const address = path.join(root.path, "containerd.sock");
  const eventsSock = path.join(root.path, "events.sock");
  const events: ttrpcevents.Envelope[] = [];
  const server = new Server();
  server.register(EventsTtrpcService, {
    forward: (req) => {
      if (req.envelope) events.push(req.envelope);
      return {};
    },
  });
  await server.listen(eventsSock);
  const clients: Client[] = [];
  const logs: string[] = [];
  const readers: Socket[] = [];
  const bundles: string[] = [];
  t.teardown(async () => {
    if (!(t as { passing?: () => boolean }).passing?.() && logs.length) {
      process.stderr.write(`--- shim log ---\n${logs.join("")}--- end of shim log ---\n`);
    }
    for (const r of readers) r.destroy();
    for (const c of clients) await c.close().catch(() => {});
    await server.close();
  });
  fs.mkdirSync(path.join(root.path, "fifo"), { recursive: true });
  const template = makeBusyboxRootfs(path.join(root.path, "rootfs-template"));
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    TTRPC_ADDRESS: eventsSock,
    TSRUNC_SOCKET_DIR: path.join(root.path, "s"),
    TSRUNC_RUNC_ROOT: path.join(root.path, "runc"),
  };

  return {
    root,
    namespace,
    address,
    env,
    events,
    async bundle(id, args, edit) {
      const dir = path.join(root.path, "bundles", namespace, id);
      fs.mkdirSync(dir, { recursive: true });
      bundles.push(dir);
      await execa("runc", ["spec"], { cwd: dir });
      const specPath = path.join(dir, "config.json");
      const spec = JSON.parse(fs.readFileSync(specPath, "utf8"));
      spec.process.args = args;
      spec.process.terminal = false;
      spec.root = { path: "rootfs", readonly: false };
      spec.linux.cgroupsPath = `/${namespace}/${id}`;
      edit?.(spec);
      fs.writeFileSync(specPath, JSON.stringify(spec));
      fs.cpSync(template, path.join(dir, "rootfs"), { recursive: true, verbatimSymlinks: true });
      // containerd creates and reads the shim's log fifo; so do we, and show it when a test fails.
      const logFifo = path.join(dir, "log");
      await execa("mkfifo", [logFifo]);
      const logSock = new Socket({
        fd: fs.openSync(logFifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK),
        writable: false,
      });
      logSock.setEncoding("utf8");
      logSock.on("data", (d: string) => logs.push(d));
      logSock.on("error", () => {});
      readers.push(logSock);
      return dir;
    },
    async start(bundle, id, stdin) {
      // The shim gets only `env` (as containerd's environment would be): tap's process-info hook
      // re-adds its NODE_OPTIONS (--import …) to every child, and the shim must not load it.
      const sock = await runShimStart({
        binary: SHIM_BIN,
        namespace,
        id,
        address,
        bundle,
        ttrpcAddress: eventsSock,
        publishBinary: "/bin/true",
        debug: true,
        env,
        ...(stdin ? { options: stdin } : {}),
      });
      root.scope.sockets.add(sock.replace(/^unix:\/\//, ""));
      const { client, task } = await connectShim(sock);
      clients.push(client);
      return { address: sock, client, task };
    },
    async fifoReader(name) {
      const p = path.join(root.path, "fifo", name);
      await execa("mkfifo", [p]);
      const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      const s = new Socket({ fd, readable: true, writable: false });
      const text = new Promise<string>((resolve, reject) => {
        let acc = "";
        s.setEncoding("utf8");
        s.on("data", (d: string) => {
          acc += d;
        });
        s.on("end", () => resolve(acc));
        s.on("error", reject);
      });
      return { path: p, text };
    },
    async fifoWriter(name) {
      const p = path.join(root.path, "fifo", name);
      await execa("mkfifo", [p]);
      return {
        path: p,
        open: () =>
          new Socket({
            fd: fs.openSync(p, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK),
            readable: false,
            writable: true,
          }),
      };
    },
    logs() {
      return logs.join("");
    },
    shimPids() {
      return bundles.flatMap((b) => {
        try {
          return [Number.parseInt(fs.readFileSync(path.join(b, BundleFile.shimPid), "utf8"), 10)];
        } catch {
          return [];
        }
      });
    },
  };
}

/** True while `pid` exists (and is not a zombie). */
export function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}
