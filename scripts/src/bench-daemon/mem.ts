// Section 3: idle memory of tsruncd (RSS, PSS from /proc/PID/smaps_rollup) with 0 and N
// containers, after a settle time; containerd's with the Go shim's N for reference; per shim,
// ours against Go's.

import { join } from "node:path";
import { execa } from "execa";
import type { Containerd } from "../../../test/helpers/containerd.js";
import { sleep, summary } from "../bench-shim/measure.js";
import { TS_NAME } from "../bench-shim/paths.js";
import type { BenchDaemon } from "./daemon.js";
import { procMemory, shimPids } from "./fleet.js";
import type { DaemonMemory, ProcMemory, ShimsMemory } from "./report.js";

function shimsMemory(pids: number[]): ShimsMemory {
  const rows = pids.map(procMemory).filter((m): m is ProcMemory => m !== undefined);
  return {
    n: rows.length,
    pssKiB: summary(rows.map((r) => r.pssKiB)),
    rssKiB: summary(rows.map((r) => r.rssKiB)),
    ussKiB: summary(rows.map((r) => r.ussKiB)),
    totalPssKiB: rows.reduce((a, r) => a + r.pssKiB, 0),
  };
}

export async function tsruncdMemory(
  d: BenchDaemon,
  containers: number,
  state: string,
  settleMs: number,
): Promise<DaemonMemory> {
  await sleep(settleMs);
  const m = procMemory(d.pid());
  if (!m) throw new Error("tsruncd is not running");
  return { who: "tsruncd", state, containers, ...m, shims: shimsMemory(shimPids(d.root.scope, TS_NAME)) };
}

/**
 * tsruncd with no container, and beside it the floor of any Node process on this machine: a bare
 * `node -e setInterval…` (its argv names the temp root, so the sweep would find it).
 */
export async function idleMemory(d: BenchDaemon, settleMs: number): Promise<DaemonMemory[]> {
  const bare = execa(
    process.execPath,
    ["-e", "setInterval(() => {}, 1 << 30)", join(d.root.path, "bare-node")],
    {
      env: { PATH: d.env.PATH ?? "/usr/bin:/bin" },
      extendEnv: false,
      stdio: "ignore",
      reject: false,
    },
  );
  try {
    const daemon = await tsruncdMemory(d, 0, "0 containers", settleMs);
    const m = procMemory(bare.pid);
    if (!m) throw new Error("the bare node process is not running");
    const none: ShimsMemory = {
      n: 0,
      pssKiB: summary([]),
      rssKiB: summary([]),
      ussKiB: summary([]),
      totalPssKiB: 0,
    };
    return [daemon, { who: "bare node", state: "node -e setInterval(…)", containers: 0, ...m, shims: none }];
  } finally {
    bare.kill("SIGKILL");
    await bare;
  }
}

export async function containerdMemory(
  cd: Containerd,
  containers: number,
  state: string,
  settleMs: number,
): Promise<DaemonMemory> {
  await sleep(settleMs);
  const m = procMemory(cd.pid());
  if (!m) throw new Error("containerd is not running");
  return {
    who: "containerd",
    state,
    containers,
    ...m,
    shims: shimsMemory(shimPids(cd.scope, "containerd-shim-runc-v2")),
  };
}
