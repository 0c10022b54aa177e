// Runs our daemon for a test: a real `tsruncd` process on the test's temp root (database,
// bundles, shim sockets and runc state all inside it), our shim found on its PATH, and a tsctl
// runner. SIGKILL and restart are what the restart tests are about, so both are one call. The
// harness's sweep kills whatever a failing test leaves (every process whose command line names
// the temp root: the daemon, its shims), unmounts and removes the root.
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { execa, type ResultPromise } from "execa";
import type { Test } from "tap";
import {
  assertNoLeaks,
  findRuncRoots,
  findScopeProcesses,
  runcContainersIn,
  type TestLike,
} from "./cleanup.js";
import { NO_NODE_PATH, withoutNode } from "./no-node.js";
import { REPO } from "./our-shim.js";
import { makeBusyboxRootfs } from "./rootfs.js";
import { SHIM_BIN } from "./shim.js";
import { type TempRoot, tempRoot } from "./temp-root.js";
import { waitFor } from "./wait.js";

// The bundled launchers, as installed (scripts/build makes them).
export const TSRUNCD = path.join(REPO, "packages/daemon/dist/bin/tsruncd");
export const TSCTL = path.join(REPO, "packages/client/dist/bin/tsctl");

export interface DaemonEnv {
  root: TempRoot;
  /** A namespace of the test's own (also the parent cgroup of its containers). */
  namespace: string;
  address: string;
  /** The environment tsruncd and tsctl run with (a PATH that finds our shim first). */
  env: Record<string, string>;
  /** Starts tsruncd (again) and waits until it serves (unless `wait` is false). */
  start(extraArgs?: string[], opts?: { env?: Record<string, string>; wait?: boolean }): Promise<void>;
  /** Resolves when the tsruncd process has exited (at once if none runs). */
  exited(): Promise<void>;
  /** The state directory (bundles under <state>/<namespace>/<id>). */
  state: string;
  /** SIGKILLs tsruncd (shims and containers must survive). */
  kill(): Promise<void>;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
  pid(): number | undefined;
  /** What tsruncd wrote on stderr so far. */
  log(): string;
  /** Runs tsctl with `--address` and `-n` set; never rejects. */
  tsctl(
    args: string[],
    opts?: { input?: string; timeoutMs?: number; env?: Record<string, string> },
  ): Promise<{
    exitCode: number;
    stdout: string;
    stderr: string;
  }>;
  /**
   * Starts tsctl with `--address` (default ours) and `-n` set and returns the child, to signal
   * or read while it runs. Output is kept byte for byte (no final newline stripped); never
   * rejects. (Through `env -i`, as tsctl(): tap's NODE_OPTIONS must not reach it.)
   */
  spawnTsctl(args: string[], opts?: SpawnTsctlOptions): ResultPromise<typeof SPAWN_TSCTL_OPTIONS>;
  /** A fresh busybox rootfs directory for `--rootfs`. */
  rootfs(name: string): string;
  /**
   * The end of a test that cleaned up after itself: stops tsruncd, asserts that no process of
   * the test (daemon, shim, container), no bundle and no runc container is left, then sweeps
   * the temp root (which must find nothing to force) and runs the leak check.
   */
  finish(t: Test): Promise<void>;
}

export interface SpawnTsctlOptions {
  /** Written to tsctl's stdin, then closed (default: no stdin). */
  input?: string;
  /** Another socket than the daemon's (e.g. one where nothing listens). */
  address?: string;
  timeoutMs?: number;
  env?: Record<string, string>;
}

const SPAWN_TSCTL_OPTIONS = { reject: false, stripFinalNewline: false } as const;

export interface DaemonEnvOptions {
  /** tsruncd to run (default the launcher TSRUNCD; e.g. the single file in dist/sea). */
  tsruncd?: string;
  /** tsctl to run (default `node TSCTL`; an executable given here is run as it is). */
  tsctl?: string;
  /** The shim tsruncd finds on its PATH (default the launcher, SHIM_BIN). */
  shim?: string;
  /**
   * tsruncd and each tsctl run where no node can be found (helpers/no-node.ts: a private mount
   * namespace per process; PATH = the shim's dir + NO_NODE_PATH).
   */
  noNode?: boolean;
}

export async function daemonEnv(t: TestLike, opts: DaemonEnvOptions = {}): Promise<DaemonEnv> {
  const root = tempRoot(t);
  const namespace = `t${randomBytes(5).toString("hex")}`;
  root.scope.namespaces.push(namespace);
  const state = path.join(root.path, "state");
  const address = path.join(state, "tsruncd.sock");
  const bin = path.join(root.path, "bin");
  fs.mkdirSync(bin, { recursive: true });
  fs.symlinkSync(opts.shim ?? SHIM_BIN, path.join(bin, "containerd-shim-tsrunc-v2"));
  const env: Record<string, string> = {
    PATH: `${bin}:${opts.noNode ? NO_NODE_PATH : (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin")}`,
    HOME: process.env.HOME ?? "/root",
    TSRUNC_FIFO_DIR: path.join(root.path, "fifo"),
  };
  const tsruncdBin = opts.tsruncd ?? TSRUNCD;
  const tsctlCommand = opts.tsctl ? [opts.tsctl] : [process.execPath, TSCTL];
  /** `env` + argv, or the same where no node can be found. */
  const command = (argv: string[]) =>
    opts.noNode ? withoutNode(root.path, env.PATH as string, ["env", ...argv]) : { file: "env", args: argv };
  let proc: ResultPromise | undefined;
  let logText = "";
  const template = makeBusyboxRootfs(path.join(root.path, "rootfs-template"));

  const waitGone = async (p: ResultPromise) => {
    await p.catch(() => {});
  };
  t.teardown(async () => {
    if (!t.passing() && logText)
      process.stderr.write(`--- tsruncd log ---\n${logText.slice(-20000)}--- end ---\n`);
    if (proc?.pid && proc.exitCode === null) {
      proc.kill("SIGTERM");
      await waitGone(proc);
    }
  });

  const env_ = {
    root,
    namespace,
    address,
    env,
    state,
    async exited() {
      if (proc) await waitGone(proc);
    },
    async start(extraArgs: string[] = [], opts: { env?: Record<string, string>; wait?: boolean } = {}) {
      // Through `env -i`: tap's process-info hook puts its NODE_OPTIONS back into every child's
      // environment whatever `env` says, and tsruncd must not load tap's loader.
      const from = logText.length;
      const argv = [
        ...envArgv({ ...env, ...opts.env }),
        // The launcher itself, not `node launcher`: its shebang carries tsruncd's V8 flags, which
        // its code cache was written under (scripts/lib/bundle-cli.mjs).
        tsruncdBin,
        "--root",
        path.join(root.path, "root"),
        "--state",
        state,
        "--address",
        address,
        "--log-level",
        "debug",
        ...extraArgs,
      ];
      const cmd = command(argv);
      const p = execa(cmd.file, cmd.args, {
        reject: false,
        stdin: "ignore",
        stdout: "ignore",
        stderr: "pipe",
        cleanup: false,
      });
      proc = p;
      p.stderr?.setEncoding("utf8");
      p.stderr?.on("data", (d: string) => {
        logText += d;
      });
      if (opts.wait === false) return;
      const outcome = await waitFor(
        () =>
          p.exitCode !== null ? "exited" : logText.includes('"msg":"tsruncd serving"', from) && "serving",
        { what: "tsruncd to serve", timeoutMs: 30_000 },
      );
      if (outcome === "exited") throw new Error(`tsruncd exited ${p.exitCode}: ${logText.slice(-2000)}`);
    },
    async kill() {
      if (!proc) return;
      proc.kill("SIGKILL");
      await waitGone(proc);
    },
    async stop() {
      if (!proc) return;
      proc.kill("SIGTERM");
      await waitGone(proc);
    },
    pid: () => proc?.pid,
    log: () => logText,
    async tsctl(
      args: string[],
      opts: { input?: string; timeoutMs?: number; env?: Record<string, string> } = {},
    ) {
      const argv = [
        ...envArgv({ ...env, ...opts.env }),
        ...tsctlCommand,
        "--address",
        address,
        "-n",
        namespace,
      ];
      const cmd = command([...argv, ...args]);
      const r = await execa(cmd.file, cmd.args, {
        reject: false,
        timeout: opts.timeoutMs ?? 60_000,
        ...(opts.input !== undefined ? { input: opts.input } : { stdin: "ignore" as const }),
      });
      return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
    },
    spawnTsctl(args: string[], opts: SpawnTsctlOptions = {}) {
      const argv = [
        ...envArgv({ ...env, ...opts.env }),
        ...tsctlCommand,
        "--address",
        opts.address ?? address,
        "-n",
        namespace,
        ...args,
      ];
      const cmd = command(argv);
      return execa(cmd.file, cmd.args, {
        ...SPAWN_TSCTL_OPTIONS,
        timeout: opts.timeoutMs ?? 60_000,
        ...(opts.input !== undefined ? { input: opts.input } : { stdin: "ignore" as const }),
      });
    },
    async finish(t: Test) {
      if (proc?.pid && proc.exitCode === null) {
        proc.kill("SIGTERM");
        await waitGone(proc);
      }
      const procs = await waitFor(() => findScopeProcesses(root.scope).length === 0, {
        what: "no process of the test left",
        timeoutMs: 5_000,
      }).catch(() => findScopeProcesses(root.scope).map((p) => p.argv.join(" ")));
      t.same(procs, true, "no daemon, shim or container process left");
      const left = fs.existsSync(path.join(state, namespace))
        ? fs.readdirSync(path.join(state, namespace))
        : [];
      t.same(left, [], "no bundle left");
      t.same(
        findRuncRoots(root.scope).flatMap((r) => runcContainersIn(r)),
        [],
        "no runc container left",
      );
      t.same(root.cleanup(), [], "the sweep had nothing to force");
      assertNoLeaks(t, root.scope);
    },
    rootfs(name: string) {
      const dir = path.join(root.path, "rootfs", name);
      fs.mkdirSync(path.dirname(dir), { recursive: true });
      fs.cpSync(template, dir, { recursive: true, verbatimSymlinks: true });
      return dir;
    },
  };
  return env_;
}

/** `env -i K=V …`: the only way past tap's NODE_OPTIONS hook (see start()). */
function envArgv(env: Record<string, string>): string[] {
  return ["-i", ...Object.entries(env).map(([k, v]) => `${k}=${v}`)];
}
