// A private containerd 1.6 per test: its own temp root (/tmp/tsr-XXXXXX, short so every socket
// path stays far below 108 bytes), root, state, temp, opt and fifo dirs, grpc and ttrpc sockets,
// a unique namespace, and a stop() that removes everything it and its shims left behind.

import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { execa, type ResultPromise } from "execa";
import { onEmergencyExit } from "./cleanup/exit-hooks.js";
import { findScopeProcesses } from "./cleanup/procfs.js";
import type { LeakScope } from "./cleanup/scope.js";
import { goShimSocketPath } from "./cleanup/sockets.js";
import { sweepSync } from "./cleanup/sweep.js";
import type { TestLike } from "./cleanup/tap-cleanup.js";
import { withFifoDir } from "./ctr-fifo-dir.js";
import { mountNamespaceOf, NO_NODE_PATH, withoutNode } from "./no-node.js";
import { makeBusyboxRootfs } from "./rootfs.js";
import { createTempRoot, type TempRootOptions } from "./temp-root.js";
import { waitFor } from "./wait.js";

export type { TestLike } from "./cleanup/tap-cleanup.js";

export interface StartContainerdOptions extends TempRootOptions {
  /** Directories put first on containerd's PATH (and so its shims'): where `containerd-shim-<name>-v2` is found. */
  pathPrepend?: string[];
  /** containerd's log level; at "debug" containerd also starts shims with `-debug`. Default "debug". */
  logLevel?: "trace" | "debug" | "info" | "warn" | "error";
  /** Raw TOML appended to the generated config (e.g. `[plugins."io.containerd.runtime.v2.task"]` keys). */
  extraConfig?: string;
  /** How long to wait for the grpc socket to answer `ctr version`. Default 20 000 ms. */
  readyTimeoutMs?: number;
  /** The namespace for `ctr` (default: "t" + 12 random hex digits, unique per test). */
  namespace?: string;
  /** Extra environment for containerd and so for the shims it starts (e.g. TSRUNC_RUNC_ROOT). */
  env?: Record<string, string>;
  /** Runc roots to sweep besides <default root>/<namespace> and any found inside the temp root. */
  runcRoots?: string[];
  /**
   * Enable containerd's CRI plugin (io.containerd.grpc.v1.cri, served on the same grpc socket) and
   * append this TOML to the config. `@ROOT@` in it, and in `env` values, stands for the temp root,
   * so the plugin's CNI dirs, runc roots and the like can live inside it. Default: CRI disabled.
   */
  cri?: string;
  /**
   * Run containerd (and so its shims) where no `node` can be found: in a private mount namespace
   * with every node hidden (helpers/no-node.ts), PATH = `env.PATH` or NO_NODE_PATH (then
   * pathPrepend). Each start makes a new namespace; see mountNamespaces.
   */
  noNode?: boolean;
}

export interface CtrOptions {
  /** Written to ctr's stdin. */
  input?: string;
  /** Milliseconds before ctr is killed (the result then has timedOut: true). Default 30 000. */
  timeout?: number;
  /** Another namespace than the harness's. */
  namespace?: string;
  /** Do not add `--fifo-dir <root>/fifo` to `run`, `task start` and `task exec`. */
  noFifoDir?: boolean;
}

/** A background ctr (stdout/stderr are streams, not buffered). */
export type CtrProcess = ResultPromise<{ reject: false; stdin: "ignore"; buffer: false }>;

export interface CtrResult {
  stdout: string;
  stderr: string;
  /** ctr's exit code; -1 if it was killed by a signal or timed out. */
  exitCode: number;
  timedOut: boolean;
  /** The command line, for messages. */
  command: string;
}

export interface Containerd {
  /** The test's temp root: everything below lives here and is removed by stop(). */
  readonly root: string;
  /** containerd's `root` (persistent data: metadata db, content, snapshots). */
  readonly containerdRoot: string;
  /** containerd's `state` (bundles live in <state>/io.containerd.runtime.v2.task/<ns>/<id>). */
  readonly stateDir: string;
  /** Where `ctr` puts the stdio fifos of the tasks it starts. */
  readonly fifoDir: string;
  readonly configPath: string;
  /** containerd's stdout+stderr (appended across restarts). */
  readonly logPath: string;
  /** grpc socket path (for `ctr --address`). */
  readonly grpcAddress: string;
  /** ttrpc socket path (where shims forward events; TTRPC_ADDRESS in a shim's env). */
  readonly ttrpcAddress: string;
  readonly namespace: string;
  /** What belongs to this test, for assertNoLeaks() and sweeps. */
  readonly scope: LeakScope;
  /** containerd's pid while it runs. */
  pid(): number | undefined;
  /** The mount namespaces containerd ran in (one per start; with noNode each is a private one). */
  readonly mountNamespaces: string[];
  running(): boolean;
  /** `ctr --address <grpc> --namespace <ns> ...args`; never rejects. */
  ctr(args: string[], opts?: CtrOptions): Promise<CtrResult>;
  /** Same as ctr() but returns the running subprocess (e.g. `ctr events`); killed by stop(). */
  ctrSpawn(args: string[], opts?: Omit<CtrOptions, "input" | "timeout">): CtrProcess;
  /** The bundle directory containerd creates for a task. */
  bundleDir(id: string, namespace?: string): string;
  /** The shim's socket path read from `<bundle>/address`, if the file exists. */
  shimSocket(id: string, namespace?: string): string | undefined;
  /** A fresh busybox rootfs at `<root>/<name>` (absolute path returned). */
  rootfs(name?: string): string;
  /** The last `lines` lines of containerd's log. */
  logTail(lines?: number): string;
  /** SIGKILL containerd and wait until it is gone; shims and containers keep running. */
  kill9(): Promise<void>;
  /**
   * Start containerd again with the same config and sockets and wait until it answers. If it is
   * still running it is first stopped with `signal` (default SIGTERM; shims keep running either way).
   */
  restart(signal?: NodeJS.Signals): Promise<void>;
  /**
   * Kill containerd and remove everything of this test: shims, containers, mounts, cgroups, shim
   * sockets, the temp root. Idempotent; also runs from t.teardown and at process exit. Returns the
   * problems met (empty when all is clean).
   */
  stop(): Promise<string[]>;
}

function shortId(): string {
  return randomBytes(6).toString("hex");
}

function cleanEnv(pathPrepend: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v === undefined) continue;
    // tap's NODE_OPTIONS (--import processinfo) and its TAP_* / _TAPJS_* variables would leak
    // into every Node process containerd starts, our shim included.
    if (k === "NODE_OPTIONS" || k === "NODE_V8_COVERAGE" || k.startsWith("TAP") || k.startsWith("_TAPJS")) {
      continue;
    }
    env[k] = v;
  }
  env.PATH = [
    ...pathPrepend,
    process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  ]
    .filter(Boolean)
    .join(":");
  return env;
}

function toml(s: string): string {
  return JSON.stringify(s); // a TOML basic string for the plain paths used here
}

function renderConfig(h: {
  containerdRoot: string;
  stateDir: string;
  tempDir: string;
  optDir: string;
  grpcAddress: string;
  ttrpcAddress: string;
  logLevel: string;
  extraConfig: string;
  cri: boolean;
}): string {
  const cri = h.cri ? "" : '\n  "io.containerd.grpc.v1.cri",';
  return `# generated by test/helpers/containerd.ts
version = 2
root = ${toml(h.containerdRoot)}
state = ${toml(h.stateDir)}
temp = ${toml(h.tempDir)}
oom_score = 0
# cri (unless asked for) would start its own streaming server and CNI; the other snapshotters
# probe the host (aufs runs modprobe) and only add noise.
disabled_plugins = [${cri}
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = ${toml(h.grpcAddress)}
  tcp_address = ""

[ttrpc]
  address = ${toml(h.ttrpcAddress)}

# No debug (pprof) socket and no metrics listener: they would collide between containerds.
[debug]
  address = ""
  level = ${toml(h.logLevel)}

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = ${toml(h.optDir)}

${h.extraConfig}
`;
}

class Harness implements Containerd {
  readonly root: string;
  readonly containerdRoot: string;
  readonly stateDir: string;
  readonly tempDir: string;
  readonly optDir: string;
  readonly fifoDir: string;
  readonly configPath: string;
  readonly logPath: string;
  readonly grpcAddress: string;
  readonly ttrpcAddress: string;
  readonly namespace: string;
  readonly scope: LeakScope;
  readonly mountNamespaces: string[] = [];
  private readonly noNode: boolean;
  private readonly env: Record<string, string>;
  private readonly readyTimeoutMs: number;
  private readonly sockets = new Set<string>();
  private readonly spawned = new Set<ResultPromise>();
  private proc:
    | {
        pid?: number | undefined;
        exitCode: number | null;
        signalCode: string | null;
        kill(s: NodeJS.Signals): boolean;
      }
    | undefined;
  private exited: Promise<unknown> | undefined;
  private stopping: Promise<string[]> | undefined;
  private lastLog = "";
  private readonly unregister: () => void;

  constructor(opts: StartContainerdOptions) {
    this.root = createTempRoot(opts);
    this.unregister = onEmergencyExit(() => this.emergencyStop());
    this.containerdRoot = path.join(this.root, "root");
    this.stateDir = path.join(this.root, "state");
    this.tempDir = path.join(this.root, "tmp");
    this.optDir = path.join(this.root, "opt");
    this.fifoDir = path.join(this.root, "fifo");
    this.configPath = path.join(this.root, "config.toml");
    this.logPath = path.join(this.root, "containerd.log");
    this.grpcAddress = path.join(this.root, "grpc.sock");
    this.ttrpcAddress = path.join(this.root, "ttrpc.sock");
    this.namespace = opts.namespace ?? `t${shortId()}`;
    const atRoot = (v: string) => (opts.cri === undefined ? v : v.replaceAll("@ROOT@", this.root));
    this.env = {
      ...cleanEnv(opts.pathPrepend ?? []),
      ...Object.fromEntries(Object.entries(opts.env ?? {}).map(([k, v]) => [k, atRoot(v)])),
    };
    this.noNode = opts.noNode ?? false;
    if (this.noNode && opts.env?.PATH === undefined)
      this.env.PATH = [...(opts.pathPrepend ?? []), NO_NODE_PATH].join(":");
    this.readyTimeoutMs = opts.readyTimeoutMs ?? 20000;
    this.scope = {
      tempRoot: this.root,
      namespaces: [this.namespace],
      needles: [this.grpcAddress],
      runcRoots: opts.runcRoots ?? [],
      sockets: this.sockets,
    };
    for (const d of [this.tempDir, this.fifoDir]) fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(
      this.configPath,
      renderConfig({
        containerdRoot: this.containerdRoot,
        stateDir: this.stateDir,
        tempDir: this.tempDir,
        optDir: this.optDir,
        grpcAddress: this.grpcAddress,
        ttrpcAddress: this.ttrpcAddress,
        logLevel: opts.logLevel ?? "debug",
        extraConfig: [opts.extraConfig ?? "", atRoot(opts.cri ?? "")].join("\n"),
        cri: opts.cri !== undefined,
      }),
    );
  }

  pid(): number | undefined {
    return this.running() ? this.proc?.pid : undefined;
  }

  running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async start(): Promise<void> {
    if (this.running()) throw new Error("containerd is already running");
    // containerd writes its log straight into the file (an fd, not a pipe through this process,
    // so the log survives this process). execa's types only admit literal fd numbers.
    const log = fs.openSync(this.logPath, "a") as 3;
    try {
      // Through `env -i`: under tap, @tapjs/processinfo hooks child_process and puts its
      // NODE_OPTIONS back into every child's environment, whatever `env` option we pass.
      const envArgs = Object.entries(this.env).map(([k, v]) => `${k}=${v}`);
      const argv = ["env", "-i", ...envArgs, "containerd", "--config", this.configPath];
      const cmd = this.noNode
        ? withoutNode(this.root, this.env.PATH ?? NO_NODE_PATH, argv)
        : { file: "env", args: argv.slice(1) };
      const proc = execa(cmd.file, cmd.args, {
        stdin: "ignore",
        stdout: log,
        stderr: log,
        reject: false,
        cwd: this.root,
      });
      this.proc = proc;
      this.exited = proc.then(
        () => undefined,
        () => undefined,
      );
    } finally {
      fs.closeSync(log);
    }
    const outcome = await waitFor(
      async () => {
        if (!this.running()) return "exited";
        if (!fs.existsSync(this.grpcAddress) || !fs.existsSync(this.ttrpcAddress)) return undefined;
        const r = await execa("ctr", ["--address", this.grpcAddress, "version"], {
          reject: false,
          timeout: 2000,
        });
        return r.exitCode === 0 ? "ready" : undefined;
      },
      { what: "containerd to answer", timeoutMs: this.readyTimeoutMs, intervalMs: 50 },
    ).catch(() => "timeout" as const);
    if (outcome === "exited") {
      throw new Error(`containerd exited during startup (code ${this.proc?.exitCode}):\n${this.logTail(40)}`);
    }
    if (outcome === "timeout") {
      throw new Error(`containerd did not answer within ${this.readyTimeoutMs} ms:\n${this.logTail(40)}`);
    }
    const ns = this.proc?.pid === undefined ? undefined : mountNamespaceOf(this.proc.pid);
    if (ns) this.mountNamespaces.push(ns);
  }

  private ctrArgs(args: string[], opts: CtrOptions): string[] {
    // ctr would put the fifos in /run/containerd/fifo, outside the temp root.
    const a = opts.noFifoDir ? [...args] : withFifoDir(args, this.fifoDir);
    return ["--address", this.grpcAddress, "--namespace", opts.namespace ?? this.namespace, ...a];
  }

  async ctr(args: string[], opts: CtrOptions = {}): Promise<CtrResult> {
    const argv = this.ctrArgs(args, opts);
    const sub = execa("ctr", argv, {
      reject: false,
      timeout: opts.timeout ?? 30000,
      forceKillAfterDelay: 1000,
      input: opts.input ?? "",
    });
    this.spawned.add(sub);
    try {
      const r = await sub;
      return {
        stdout: String(r.stdout ?? ""),
        stderr: String(r.stderr ?? ""),
        exitCode: r.exitCode ?? -1,
        timedOut: r.timedOut,
        command: `ctr ${argv.join(" ")}`,
      };
    } finally {
      this.spawned.delete(sub);
    }
  }

  ctrSpawn(args: string[], opts: Omit<CtrOptions, "input" | "timeout"> = {}): CtrProcess {
    const sub = execa("ctr", this.ctrArgs(args, opts), { reject: false, stdin: "ignore", buffer: false });
    this.spawned.add(sub);
    sub.then(
      () => this.spawned.delete(sub),
      () => this.spawned.delete(sub),
    );
    return sub;
  }

  bundleDir(id: string, namespace = this.namespace): string {
    return path.join(this.stateDir, "io.containerd.runtime.v2.task", namespace, id);
  }

  shimSocket(id: string, namespace = this.namespace): string | undefined {
    try {
      const address = fs.readFileSync(path.join(this.bundleDir(id, namespace), "address"), "utf8").trim();
      const p = address.replace(/^unix:\/\//, "");
      this.sockets.add(p);
      return p;
    } catch {
      return undefined;
    }
  }

  rootfs(name = "rootfs"): string {
    return makeBusyboxRootfs(path.join(this.root, name));
  }

  logTail(lines = 80): string {
    try {
      return fs
        .readFileSync(this.logPath, "utf8")
        .split("\n")
        .slice(-lines - 1)
        .join("\n");
    } catch {
      // stop() removed the file: what it kept of it.
      return (
        this.lastLog
          .split("\n")
          .slice(-lines - 1)
          .join("\n") || "(no containerd log)"
      );
    }
  }

  private async terminate(signal: NodeJS.Signals, graceMs: number): Promise<void> {
    const proc = this.proc;
    if (!proc || !this.running()) return;
    proc.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise((r) => {
      timer = setTimeout(r, graceMs, "timeout");
    });
    const outcome = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (outcome === "timeout") {
      proc.kill("SIGKILL");
      await this.exited;
    }
  }

  async kill9(): Promise<void> {
    await this.terminate("SIGKILL", 5000);
  }

  async restart(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    await this.terminate(signal, 5000);
    await this.start();
  }

  /** Shim sockets this containerd's shims use: from bundles' address files and shims' arguments. */
  private collectShimSockets(): void {
    const tasks = path.join(this.stateDir, "io.containerd.runtime.v2.task");
    let namespaces: string[] = [];
    try {
      namespaces = fs.readdirSync(tasks);
    } catch {
      // no task ever ran
    }
    for (const ns of namespaces) {
      let ids: string[] = [];
      try {
        ids = fs.readdirSync(path.join(tasks, ns));
      } catch {
        continue;
      }
      for (const id of ids) {
        this.shimSocket(id, ns);
        this.sockets.add(goShimSocketPath(this.grpcAddress, ns, id));
      }
    }
    for (const p of findScopeProcesses(this.scope, false)) {
      const ns = argValue(p.argv, "namespace");
      const id = argValue(p.argv, "id");
      if (ns && id) this.sockets.add(goShimSocketPath(this.grpcAddress, ns, id));
    }
  }

  stop(): Promise<string[]> {
    this.stopping ??= (async () => {
      for (const sub of this.spawned) sub.kill("SIGKILL");
      await Promise.allSettled([...this.spawned]);
      await this.terminate("SIGTERM", 3000);
      this.lastLog = this.logTail(400);
      this.collectShimSockets();
      this.unregister();
      return sweepSync(this.scope);
    })();
    return this.stopping;
  }

  /** Synchronous stop for the exit hook: SIGKILL containerd, then the same sweep. */
  private emergencyStop(): void {
    for (const sub of this.spawned) sub.kill("SIGKILL");
    if (this.running()) this.proc?.kill("SIGKILL");
    this.collectShimSockets();
    const errors = sweepSync(this.scope);
    if (errors.length)
      process.stderr.write(`tsr harness: emergency cleanup of ${this.root}: ${errors.join("; ")}\n`);
  }
}

/** TSR_HARNESS_DEBUG=1: timings of start and stop on stderr. */
function debug(msg: string): void {
  if (process.env.TSR_HARNESS_DEBUG) process.stderr.write(`tsr harness: ${msg}\n`);
}

/** The value of a Go-style flag (`-name v`, `--name v`, `-name=v`, `--name=v`) in argv. */
export function argValue(argv: readonly string[], name: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? "";
    if (a === `-${name}` || a === `--${name}`) return argv[i + 1];
    for (const prefix of [`-${name}=`, `--${name}=`]) if (a.startsWith(prefix)) return a.slice(prefix.length);
  }
  return undefined;
}

/**
 * Start a private containerd for the test `t` and wait until its grpc socket answers. Its stop()
 * is registered with t.teardown (and with a process exit hook); when the test failed the tail of
 * containerd's log is printed first.
 */
export async function startContainerd(t: TestLike, opts: StartContainerdOptions = {}): Promise<Containerd> {
  const h = new Harness(opts);
  t.teardown(async () => {
    if (!t.passing()) {
      process.stderr.write(`--- containerd log (${h.logPath}), last lines ---\n${h.logTail(60)}\n---\n`);
    }
    const t0 = performance.now();
    const errors = await h.stop();
    debug(`stop ${h.root}: ${(performance.now() - t0).toFixed(0)} ms`);
    if (errors.length) process.stderr.write(`tsr harness: cleanup of ${h.root}: ${errors.join("; ")}\n`);
  });
  try {
    const t0 = performance.now();
    await h.start();
    debug(`start ${h.root}: ${(performance.now() - t0).toFixed(0)} ms`);
  } catch (e) {
    await h.stop();
    throw e;
  }
  return h;
}
