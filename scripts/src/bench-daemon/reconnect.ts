// Section 2: with N running containers, SIGKILL tsruncd and start it again: time from the spawn
// to its "tsruncd serving" line, to its "boot reconcile done" line (whose `ms` is the reconcile
// alone; it may come before or after serving), and until a `tsctl tasks ls` lists every container
// RUNNING again, with the same pids (none was killed).

import { summary } from "../bench-shim/measure.js";
import type { BenchDaemon } from "./daemon.js";
import { listTasks } from "./fleet.js";
import type { ReconnectResult, ReconnectSample } from "./report.js";

const ALL_RUNNING_TIMEOUT_MS = 30_000;

export async function benchReconnect(
  d: BenchDaemon,
  ids: string[],
  repeats: number,
  note: (m: string) => void,
): Promise<ReconnectResult> {
  const pidsOf = (tasks: Awaited<ReturnType<typeof listTasks>>["tasks"]) =>
    new Map(tasks.filter((t) => t.status === "RUNNING").map((t) => [t.id, t.pid]));
  const before = pidsOf((await listTasks(d)).tasks);
  const missing = ids.filter((id) => !before.has(id));
  if (missing.length) throw new Error(`not RUNNING before the first SIGKILL: ${missing.join(" ")}`);
  const samples: ReconnectSample[] = [];
  for (let rep = 0; rep < repeats; rep++) {
    note(`reconnect ${rep + 1}/${repeats}: SIGKILL tsruncd, start it again`);
    await d.kill();
    const s = await d.start();
    const booted = d.waitLine((l) => l.msg === "boot reconcile done", s.from, '"boot reconcile done"');
    booted.catch(() => {});
    const num = (v: unknown) => (typeof v === "number" ? v : Number.NaN);
    let polls = 0;
    let firstLsMs = Number.NaN;
    let running = 0;
    let endedAt = Number.NaN;
    let samePids = 0;
    const deadline = s.servingAt + ALL_RUNNING_TIMEOUT_MS;
    for (;;) {
      const ls = await listTasks(d);
      polls++;
      if (polls === 1) firstLsMs = ls.ms;
      const now = pidsOf(ls.tasks);
      running = ids.filter((id) => now.has(id)).length;
      if (running === ids.length) {
        endedAt = ls.endedAt;
        samePids = ids.filter((id) => now.get(id) === before.get(id)).length;
        break;
      }
      if (ls.endedAt > deadline) break;
    }
    const boot = await booted;
    samples.push({
      servingMs: s.servingAt - s.spawnedAt,
      servingLoggedMs: num(s.serving.time) - s.spawnedAt,
      bootDoneMs: boot.readAt - s.spawnedAt,
      bootMs: num(boot.ms),
      reattached: num(boot.reattached),
      dead: num(boot.dead),
      allRunningMs: endedAt - s.spawnedAt,
      firstLsMs,
      polls,
      running,
      samePids,
    });
  }
  return {
    containers: ids.length,
    repeats,
    samples,
    servingMs: summary(samples.map((x) => x.servingMs)),
    allRunningMs: summary(samples.map((x) => x.allRunningMs)),
    bootMs: summary(samples.map((x) => x.bootMs)),
    bootDoneMs: summary(samples.map((x) => x.bootDoneMs)),
  };
}
