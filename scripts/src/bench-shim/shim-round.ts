// One round of a shim driven by hand as containerd drives it, timed: `start` in a fresh bundle,
// Task.Connect on the address it printed, Shutdown, then `delete`. The argv, the environment and
// the address handling are the shim contract's (@tsrunc/shim-contract), as in the daemon and the
// tests; only a profiled round execs the verbs itself (see execVerb).

import { constants, mkdirSync, openSync, writeFileSync } from "node:fs";
import { Socket } from "node:net";
import { join } from "node:path";
import { task } from "@tsrunc/protocol/shim";
import { BundleFile } from "@tsrunc/shim-contract/bundle-files";
import {
  deleteArgs,
  type ShimInvocation,
  shimEnvironment,
  startArgs,
} from "@tsrunc/shim-contract/invocation";
import { connectShim, runShimDelete, runShimStart } from "@tsrunc/shim-contract/launcher";
import { execa } from "execa";
import { goShimSocketPath } from "../../../test/helpers/cleanup.js";
import type { Containerd } from "../../../test/helpers/containerd.js";
import { waitFor } from "../../../test/helpers/wait.js";
import { alive } from "./measure.js";

export interface RoundTimes {
  /** `start` until it exited having printed the address. */
  startMs: number;
  /** `start` until the serve process answered Task.Connect. */
  connectMs: number;
  /** `delete` until it exited (no container left to clean up). */
  deleteMs: number;
  /**
   * `delete` again with the marker our server leaves after a clean Task.Delete (what containerd
   * 1.6 runs after every `ctr run --rm`); the Go shim ignores the file.
   */
  deleteCleanMs: number;
}

/** A socket outside the temp root that the harness's sweep should remove if the shim leaves it. */
function ownSocket(cd: Containerd, path: string): void {
  const sockets = cd.scope.sockets;
  if (sockets instanceof Set) sockets.add(path);
}

/**
 * A profiled round: the profiler's preload rides in NODE_OPTIONS, which shimEnvironment drops
 * (rightly, for every real caller). So the same argv and environment as the launcher's plus
 * `nodeEnv`, exec'd here; returns stdout.
 */
async function execVerb(
  binary: string,
  argv: string[],
  inv: ShimInvocation,
  base: Record<string, string>,
  nodeEnv: Record<string, string>,
): Promise<string> {
  const r = await execa(binary, argv, {
    cwd: inv.bundle,
    env: { ...shimEnvironment(inv, base), ...nodeEnv },
    extendEnv: false,
    input: "",
    all: true,
    reject: false,
    timeout: 10_000,
  });
  // `delete` may fail (the Go shim's does: runc finds no container); `start` may not.
  if (r.exitCode !== 0 && argv.at(-1) === "start")
    throw new Error(`${binary} ${argv.join(" ")}: exit ${r.exitCode}: ${String(r.all)}`);
  return String(r.stdout).trim();
}

/**
 * `start` → Task.Connect → Shutdown → wait for the serve process to exit → `delete` of `binary`
 * for container `id`, in a bundle under the harness's temp root. `nodeEnv` (the profiler's) is
 * added to the shim's environment.
 */
export async function shimRound(
  cd: Containerd,
  binary: string,
  id: string,
  nodeEnv?: Record<string, string>,
): Promise<RoundTimes> {
  const bundle = join(cd.root, "sb", id);
  mkdirSync(bundle, { recursive: true });
  writeFileSync(join(bundle, "config.json"), "{}"); // the Go shim reads the spec for its group
  // The `log` fifo with a reader, as containerd has it: the Go shim's server opens it for writing
  // (and exits without it); ours writes its log lines there.
  await execa("mkfifo", [join(bundle, "log")]);
  const logReader = new Socket({
    fd: openSync(join(bundle, "log"), constants.O_RDONLY | constants.O_NONBLOCK),
    readable: true,
    writable: false,
  });
  const logText: string[] = [];
  logReader.on("data", (d) => logText.push(String(d)));
  logReader.on("error", () => {});
  const inv: ShimInvocation = {
    namespace: cd.namespace,
    id,
    address: cd.grpcAddress,
    bundle,
    ttrpcAddress: cd.ttrpcAddress,
    grpcAddress: cd.grpcAddress,
    publishBinary: "/usr/bin/containerd",
  };
  // Our shim's socket goes under the temp root; the Go shim's into /run/containerd/s.
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", TSRUNC_SOCKET_DIR: join(cd.root, "s") };
  ownSocket(cd, goShimSocketPath(cd.grpcAddress, cd.namespace, id));
  try {
    const t0 = performance.now();
    const address = nodeEnv
      ? await execVerb(binary, startArgs(inv), inv, env, nodeEnv)
      : await runShimStart({ ...inv, binary, env });
    const startMs = performance.now() - t0;
    if (!address.startsWith("unix://")) throw new Error(`${binary} start printed ${JSON.stringify(address)}`);
    ownSocket(cd, address.slice("unix://".length));
    const conn = await connectShim(address);
    let connectMs: number;
    let pid: number;
    try {
      const c = await conn.task.connect({ id }, { timeoutMs: 10_000 }).catch((e: Error) => {
        throw new Error(`${binary} (${id}): Task.Connect on ${address}: ${e.message}\n${logText.join("")}`);
      });
      connectMs = performance.now() - t0;
      pid = c.shimPid;
      await conn.task.shutdown({ id, now: true }, { timeoutMs: 5000 }).catch(() => {});
    } finally {
      await conn.close().catch(() => {});
    }
    // The shim exits on Shutdown; wait for it so the next sample does not share the CPU with it.
    await waitFor(() => !alive(pid), {
      what: `${binary} serve (pid ${pid}) to exit`,
      timeoutMs: 5000,
      intervalMs: 10,
    });
    // Then `delete`, as containerd 1.6 runs it after every shim exit (its ttrpc client's on-close
    // cleanup) and waits for it before `ctr run --rm` returns. Here no container is left to clean
    // up, as after a normal Delete: the Go shim then exits non-zero (runc finds no container), so
    // the outcome is not checked, only timed.
    const t1 = performance.now();
    if (nodeEnv) await execVerb(binary, deleteArgs(inv), inv, env, nodeEnv);
    else await runShimDelete({ ...inv, binary, env }).catch(() => undefined);
    const deleteMs = performance.now() - t1;
    writeFileSync(join(bundle, BundleFile.deleted), task.DeleteResponse.encode({ pid: 1, exitStatus: 0 }));
    const t2 = performance.now();
    if (nodeEnv) await execVerb(binary, deleteArgs(inv), inv, env, nodeEnv);
    else await runShimDelete({ ...inv, binary, env }).catch(() => undefined);
    return { startMs, connectMs, deleteMs, deleteCleanMs: performance.now() - t2 };
  } finally {
    logReader.destroy();
  }
}
