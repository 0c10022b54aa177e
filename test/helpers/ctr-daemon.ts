// tsruncd with its containerd gRPC socket, driven by the real `ctr` (Debian's containerd 1.6):
// startDaemonWithGrpc(t) starts a tsruncd (helpers/daemon.ts: temp root, our shim on its PATH,
// swept on failure) that also serves `--grpc-address <state>/grpc.sock`, and returns it with a
// ctr() runner and ctrSpawn() for the long-lived ones (`ctr events`, `ctr run` in the
// foreground). ctr's stdio fifos go to <root>/fifo (`--fifo-dir`), never /run/containerd/fifo.
import * as fs from "node:fs";
import * as path from "node:path";
import { execa, type ResultPromise } from "execa";
import type { TestLike } from "./cleanup.js";
import type { CtrProcess, CtrResult } from "./containerd.js";
import { withFifoDir } from "./ctr-fifo-dir.js";
import { type DaemonEnv, daemonEnv } from "./daemon.js";
import { waitFor } from "./wait.js";

export interface CtrRunOptions {
  /** Written to ctr's stdin (default: none). */
  input?: string;
  /** Milliseconds before ctr is killed (then timedOut). Default 60 000. */
  timeoutMs?: number;
  /** Another namespace than the test's. */
  namespace?: string;
  /** Do not add `--fifo-dir` to `run`, `task start` and `task exec`. */
  noFifoDir?: boolean;
  /** Another socket than the daemon's gRPC one. */
  address?: string;
}

// ctr's result and background process are the same as under containerd.ts's harness.
export type { CtrProcess, CtrResult } from "./containerd.js";

export interface GrpcDaemon extends DaemonEnv {
  /** tsruncd's containerd gRPC socket (`ctr --address`). */
  grpcAddress: string;
  /** Where ctr puts its fifos. */
  fifoDir: string;
  /** The argv ctr() runs (after `ctr`): address, namespace, args with `--fifo-dir` added. */
  ctrArgs(args: string[], opts?: CtrRunOptions): string[];
  /** `ctr --address <grpc> --namespace <ns> …args`; never rejects. */
  ctr(args: string[], opts?: CtrRunOptions): Promise<CtrResult>;
  /** Same, running in the background with streams (killed at teardown if still running). */
  ctrSpawn(args: string[], opts?: Omit<CtrRunOptions, "input" | "timeoutMs">): CtrProcess;
}

/** Starts tsruncd with `--grpc-address` on a fresh temp root and waits until both sockets serve. */
export async function startDaemonWithGrpc(
  t: TestLike,
  opts: { extraArgs?: string[]; env?: Record<string, string> } = {},
): Promise<GrpcDaemon> {
  const d = await daemonEnv(t);
  const grpcAddress = path.join(d.state, "grpc.sock");
  const fifoDir = path.join(d.root.path, "fifo");
  fs.mkdirSync(fifoDir, { recursive: true });
  const spawned = new Set<ResultPromise>();
  t.teardown(async () => {
    for (const p of spawned) {
      p.kill("SIGKILL");
      await p.catch(() => {});
    }
  });
  const ctrArgs = (args: string[], o: CtrRunOptions = {}) => {
    const a = o.noFifoDir ? [...args] : withFifoDir(args, fifoDir);
    return ["--address", o.address ?? grpcAddress, "--namespace", o.namespace ?? d.namespace, ...a];
  };
  const ctrEnv = { PATH: d.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", HOME: d.env.HOME ?? "/root" };
  const ctr = async (args: string[], o: CtrRunOptions = {}): Promise<CtrResult> => {
    const argv = ctrArgs(args, o);
    const sub = execa("ctr", argv, {
      reject: false,
      env: ctrEnv,
      extendEnv: false,
      timeout: o.timeoutMs ?? 60_000,
      forceKillAfterDelay: 1000,
      ...(o.input !== undefined ? { input: o.input } : { stdin: "ignore" as const }),
    });
    spawned.add(sub);
    try {
      const r = await sub;
      return {
        exitCode: r.exitCode ?? -1,
        stdout: String(r.stdout ?? ""),
        stderr: String(r.stderr ?? ""),
        timedOut: r.timedOut,
        command: `ctr ${argv.join(" ")}`,
      };
    } finally {
      spawned.delete(sub);
    }
  };
  const ctrSpawn = (args: string[], o: Omit<CtrRunOptions, "input" | "timeoutMs"> = {}): CtrProcess => {
    const sub = execa("ctr", ctrArgs(args, o), {
      reject: false,
      env: ctrEnv,
      extendEnv: false,
      stdin: "ignore",
      buffer: false,
    });
    spawned.add(sub);
    sub.then(
      () => spawned.delete(sub),
      () => spawned.delete(sub),
    );
    return sub;
  };
  const grpc: GrpcDaemon = Object.assign(d, { grpcAddress, fifoDir, ctrArgs, ctr, ctrSpawn });
  const start = d.start.bind(d);
  // Every (re)start serves the gRPC socket too, and is ready once `ctr version` answers there.
  grpc.start = async (extraArgs = [], o = {}) => {
    await start(["--grpc-address", grpcAddress, ...(opts.extraArgs ?? []), ...extraArgs], {
      ...o,
      env: { ...opts.env, ...o.env },
    });
    if (o.wait === false) return;
    await waitFor(async () => (await ctr(["version"], { timeoutMs: 10_000 })).exitCode === 0, {
      what: "ctr version on tsruncd's gRPC socket",
      timeoutMs: 30_000,
      intervalMs: 200,
    });
  };
  await grpc.start();
  return grpc;
}
