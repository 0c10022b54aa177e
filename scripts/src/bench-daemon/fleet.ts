// N long-running containers on either side, a few started at once: ours through
// `tsctl run -d … sleep 1000000`, the Go shim's through `ctr run -d … sleep 1000000`; and the
// processes that serve them, found in /proc.

import { findScopeProcesses } from "../../../test/helpers/cleanup.js";
import { argValue, type Containerd } from "../../../test/helpers/containerd.js";
import { smapsRollup, summary, threadCount } from "../bench-shim/measure.js";
import type { BenchDaemon } from "./daemon.js";
import { GO_RT, type ProcMemory } from "./report.js";

/** Containers started at once while building a fleet (this machine has few CPUs). */
const WORKERS = 4;
const SLEEP = ["/bin/sleep", "1000000"];

async function pool(n: number, f: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) await f(i);
  };
  await Promise.all(Array.from({ length: Math.min(WORKERS, n) }, worker));
}

export interface Fleet {
  ids: string[];
  /** Wall time of each `run -d`, four at a time. */
  startMs: ReturnType<typeof summary>;
}

export async function oursFleet(d: BenchDaemon, n: number, note: (m: string) => void): Promise<Fleet> {
  const ids = Array.from({ length: n }, (_, i) => `f-${i}`);
  const ms: number[] = [];
  await pool(n, async (i) => {
    const r = await d.tsctlOk(["run", "-d", "--rootfs", d.rootfs, ids[i] ?? "", ...SLEEP]);
    ms.push(r.ms);
    if (ms.length % 25 === 0 || ms.length === n) note(`tsctl run -d: ${ms.length}/${n}`);
  });
  return { ids, startMs: summary(ms) };
}

export async function goFleet(
  cd: Containerd,
  rootfs: string,
  n: number,
  note: (m: string) => void,
): Promise<Fleet> {
  const ids = Array.from({ length: n }, (_, i) => `g-${i}`);
  const ms: number[] = [];
  await pool(n, async (i) => {
    const t0 = performance.now();
    const r = await cd.ctr(["run", "-d", "--runtime", GO_RT, "--rootfs", rootfs, ids[i] ?? "", ...SLEEP], {
      timeout: 60_000,
    });
    if (r.exitCode !== 0) throw new Error(`${r.command}: exit ${r.exitCode}: ${r.stderr.trim()}`);
    ms.push(performance.now() - t0);
    if (ms.length % 25 === 0 || ms.length === n) note(`ctr run -d: ${ms.length}/${n}`);
  });
  return { ids, startMs: summary(ms) };
}

export interface TaskRow {
  id: string;
  pid: number;
  status: string;
}

/** `tsctl tasks ls --format json`, timed. */
export async function listTasks(d: BenchDaemon): Promise<{ tasks: TaskRow[]; ms: number; endedAt: number }> {
  const r = await d.tsctlOk(["tasks", "ls", "--format", "json"]);
  return { tasks: JSON.parse(r.stdout) as TaskRow[], ms: r.ms, endedAt: r.endedAt };
}

/** RSS/PSS/USS (KiB) and threads of one process; undefined if it is gone. */
export function procMemory(pid: number | undefined): ProcMemory | undefined {
  if (!pid) return undefined;
  const m = smapsRollup(pid);
  if (!m) return undefined;
  return {
    pid,
    rssKiB: m.Rss ?? Number.NaN,
    pssKiB: m.Pss ?? Number.NaN,
    pssAnonKiB: m.Pss_Anon ?? Number.NaN,
    pssFileKiB: m.Pss_File ?? Number.NaN,
    ussKiB: m.Uss,
    threads: threadCount(pid) ?? Number.NaN,
  };
}

/** The long-lived shim processes named `binary` in a scope (by argv: `-id ID`, not the `start` verb). */
export function shimPids(scope: Parameters<typeof findScopeProcesses>[0], binary: string): number[] {
  return findScopeProcesses(scope, false)
    .filter(
      (p) =>
        p.argv.some((a) => a.endsWith(binary)) &&
        argValue(p.argv, "id") !== undefined &&
        p.argv.at(-1) !== "start",
    )
    .map((p) => p.pid);
}
