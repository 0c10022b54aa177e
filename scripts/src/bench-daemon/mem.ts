// Section 3: idle memory of tsruncd (RSS, PSS from /proc/PID/smaps_rollup) with 0 and N
// containers, after a settle time; containerd's with the Go shim's N for reference; per shim,
// ours against Go's.

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
