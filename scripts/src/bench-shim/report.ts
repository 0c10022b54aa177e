// The bench's result (also its --json output) and the report printed from it.

import { mb, ms, type SmapsRollup, type Summary } from "./measure.js";
import { formatSummary, type ProfileSummary } from "./profile.js";
import { type StandaloneResult, standaloneLines } from "./standalone.js";

export const GO_RT = "io.containerd.runc.v2";
export const TS_RT = "io.containerd.tsrunc.v2";
export const GROUPED_RT = "io.containerd.tsrunc-grouped.v2";
export const GROUPED_NAME = "containerd-shim-tsrunc-grouped-v2";
/** Issue 13's goals for one shim per container: run time, idle PSS per container, 100 at once. */
export const GOALS = { runRatio: 1.5, pssRatio: 3, burstRatio: 1.5 };
/** Issue 13's goals for grouped mode: run time, idle PSS per container at 10 and at 50. */
export const GROUPED_GOALS = { runRatio: 1.2, pssRatio10: 0.5, pssRatio50: 0.25 };

export interface EnvInfo {
  node: string;
  containerd: string;
  runc: string;
  cpus: number;
  shim: string;
  shimBytes: number;
  shimBuilt: string;
  loadBefore: string[];
  loadAfter?: string[];
}

export interface RunResult {
  runs: number;
  warmup: number;
  go: Summary & { samples: number[] };
  ours: Summary & { samples: number[] };
  /** Grouped mode, each run joining a group with a live shim. */
  grouped: Summary & { samples: number[] };
  ratio: { median: number; p90: number };
  groupedRatio: { median: number; p90: number };
  shimsLeftAfterRuns: number;
  failures: string[];
}

export type ShimMemory = Partial<SmapsRollup> & { pid: number; id?: string; threads: number | undefined };

export interface MemSummary {
  n: number;
  pssKiB: Summary;
  rssKiB: Summary;
  ussKiB: Summary;
  pssAnonKiB: Summary;
  pssFileKiB: Summary;
  threads: Summary;
  totalPssKiB: number;
  totalRssKiB: number;
}

export interface MemResult {
  idle: number;
  /** Grouped mode: the one server of `idle` containers. */
  grouped: ShimMemory & { perContainerPssKiB: number; ratioToGoPss: number; runDetached: Summary };
  settleMs: number;
  go: MemSummary;
  ours: MemSummary;
  bareNode: MemSummary;
  ratio: { pss: number; rss: number; uss: number };
  runDetached: { go: Summary; ours: Summary };
  perShim: { go: ShimMemory[]; ours: ShimMemory[] };
}

export interface BurstRuntimeResult {
  /** Wall time of each phase: N ctr processes at once, until the last returns. */
  runMs: number;
  execMs: number;
  rmMs: number;
  totalMs: number;
  failures: string[];
}

export interface BurstResult {
  n: number;
  go: BurstRuntimeResult;
  ours: BurstRuntimeResult;
  grouped: BurstRuntimeResult;
  groupedRatio: number;
  ratio: { run: number; exec: number; rm: number; total: number };
  shimsLeft: number;
}

/** The timed rows of the start breakdown, in the order of the --json output. */
export const START_ROWS = [
  "nodeBare",
  "oursVersion",
  "goVersion",
  "oursStart",
  "oursConnect",
  "oursDelete",
  "oursDeleteClean",
  "goStart",
  "goConnect",
  "goDelete",
] as const;
export type StartRow = (typeof START_ROWS)[number];
export type StartResult = { starts: number } & Record<
  StartRow | "oursServeAfterStart" | "goServeAfterStart",
  Summary
>;

/** The Task calls the timeline follows. */
export const TIMELINE_METHODS = ["create", "start", "wait", "delete", "shutdown"] as const;
type TimelineMethod = (typeof TIMELINE_METHODS)[number];
export type TimelineStep =
  | "serving"
  | "exit"
  | "afterShutdown"
  | `${TimelineMethod}.${"begin" | "ms" | "end"}`;
export type TimelineResult = { runs: number; goRun: Summary } & Partial<Record<TimelineStep, Summary>>;

export interface BenchResult {
  env: EnvInfo;
  run?: RunResult;
  /** One per --idle count (10 and 50 by default). */
  mem?: MemResult[];
  burst?: BurstResult;
  start?: StartResult;
  timeline?: TimelineResult;
  profile?: { dir: string; profiles: ProfileSummary[] };
  /** The single-file shim against the launcher (standalone.ts). */
  standalone?: StandaloneResult;
}

function x(v: number): string {
  return Number.isFinite(v) ? `${v.toFixed(2)}×` : "n/a";
}

function verdict(v: number, goal: number): string {
  return Number.isFinite(v) ? (v <= goal ? `goal ≤ ${goal}×: met` : `goal ≤ ${goal}×: MISSED`) : "";
}

function runLines(r: RunResult): string[] {
  const { go, ours } = r;
  const lines = [
    "",
    `ctr run --rm --rootfs DIR id /bin/true — ${r.runs} runs each, interleaved Go/ours, after ${r.warmup} warm-up each:`,
    `  go   ${GO_RT}   median ${ms(go.median)}  p90 ${ms(go.p90)}  (min ${ms(go.min)}, max ${ms(go.max)})`,
    `  ours ${TS_RT} median ${ms(ours.median)}  p90 ${ms(ours.p90)}  (min ${ms(ours.min)}, max ${ms(ours.max)})`,
    `  ours/go: ${x(r.ratio.median)} median, ${x(r.ratio.p90)} p90 — ${verdict(r.ratio.median, GOALS.runRatio)}`,
  ];
  const g = r.grouped;
  lines.push(
    `  grouped ${GROUPED_RT} (group with a live shim) median ${ms(g.median)}  p90 ${ms(g.p90)}  (min ${ms(g.min)}, max ${ms(g.max)})`,
    `  grouped/go: ${x(r.groupedRatio.median)} median, ${x(r.groupedRatio.p90)} p90 — ${verdict(r.groupedRatio.median, GROUPED_GOALS.runRatio)}`,
  );
  if (r.failures.length) lines.push(`  FAILED: ${r.failures.length} run(s), left out of the numbers`);
  if (r.shimsLeftAfterRuns)
    lines.push(`  WARNING: ${r.shimsLeftAfterRuns} shim(s) still running 3 s after the runs`);
  return lines;
}

function memLines(m: MemResult): string[] {
  const row = (name: string, s: MemSummary) =>
    `  ${name} PSS ${mb(s.pssKiB.median)} (anon ${mb(s.pssAnonKiB.median)}, file ${mb(s.pssFileKiB.median)})  RSS ${mb(s.rssKiB.median)}  USS ${mb(s.ussKiB.median)}  threads ${s.threads.median}  — total of ${s.n}: PSS ${mb(s.totalPssKiB)}, RSS ${mb(s.totalRssKiB)}`;
  return [
    "",
    `idle shims — ${m.idle} \`ctr run -d … /bin/sleep\` per runtime, median per process after ${m.settleMs} ms:`,
    row("go  ", m.go),
    row("ours", m.ours),
    row("bare node (setInterval)", m.bareNode),
    `  ours/go: PSS ${x(m.ratio.pss)}, RSS ${x(m.ratio.rss)}, USS ${x(m.ratio.uss)} — PSS ${verdict(m.ratio.pss, GOALS.pssRatio)}`,
    `  grouped: one server PSS ${mb(m.grouped.Pss ?? 0)} (anon ${mb(m.grouped.Pss_Anon ?? 0)}, threads ${m.grouped.threads}) for ${m.idle} containers = ${mb(m.grouped.perContainerPssKiB)} per container; grouped/go per container: ${x(m.grouped.ratioToGoPss)} — ${verdict(m.grouped.ratioToGoPss, m.idle >= 50 ? GROUPED_GOALS.pssRatio50 : GROUPED_GOALS.pssRatio10)}`,
    `  (ctr run -d: go median ${ms(m.runDetached.go.median)}, ours median ${ms(m.runDetached.ours.median)}, grouped median ${ms(m.grouped.runDetached.median)})`,
  ];
}

function burstLines(b: BurstResult): string[] {
  const row = (name: string, r: BurstRuntimeResult) =>
    `  ${name} run -d ${ms(r.runMs).padStart(9)}  exec ${ms(r.execMs).padStart(9)}  rm ${ms(r.rmMs).padStart(9)}  total ${ms(r.totalMs).padStart(9)}  failed ${r.failures.length}/${b.n * 3}`;
  const lines = [
    "",
    `${b.n} containers at once — \`ctr run -d\` ×${b.n} in parallel, then \`ctr task exec\` ×${b.n}, then \`ctr task rm -f\` + \`ctr containers rm\` ×${b.n}; wall time of each phase:`,
    row("go  ", b.go),
    row("ours", b.ours),
    row("grpd", b.grouped),
    `  ours/go: run ${x(b.ratio.run)}, exec ${x(b.ratio.exec)}, rm ${x(b.ratio.rm)}, total ${x(b.ratio.total)} — ${verdict(b.ratio.total, GOALS.burstRatio)}`,
    `  grouped/go: total ${x(b.groupedRatio)} — ${verdict(b.groupedRatio, GOALS.burstRatio)}`,
  ];
  for (const f of [...b.go.failures, ...b.ours.failures, ...b.grouped.failures].slice(0, 5))
    lines.push(`  FAILED: ${f}`);
  if (b.shimsLeft) lines.push(`  WARNING: ${b.shimsLeft} shim(s) still running 10 s after the removal`);
  return lines;
}

function startLines(s: StartResult): string[] {
  const row = (name: string, v: Summary) =>
    `  ${name.padEnd(44)} median ${ms(v.median).padStart(9)}  p90 ${ms(v.p90).padStart(9)}`;
  return [
    "",
    `start breakdown — ${s.starts} rounds, each shim's \`start\` run by hand as containerd does:`,
    row("node -e 0", s.nodeBare),
    row("ours -v (node + load the bundle, no work)", s.oursVersion),
    row("ours `start` until it exits", s.oursStart),
    row("ours start → serve answers Task.Connect", s.oursConnect),
    row("  of which after start exited", s.oursServeAfterStart),
    row("ours `delete` (no container left)", s.oursDelete),
    row("ours `delete` after a clean Delete (marker)", s.oursDeleteClean),
    row("go -v", s.goVersion),
    row("go `start` until it exits", s.goStart),
    row("go start → serve answers Task.Connect", s.goConnect),
    row("go `delete` (no container left)", s.goDelete),
  ];
}

function timelineLines(tl: TimelineResult): string[] {
  const med = (k: TimelineStep) => tl[k]?.median;
  const at = (k: TimelineStep) => (med(k)?.toFixed(0) ?? "n/a").padStart(4);
  const span = (m: TimelineMethod, label: string) =>
    tl[`${m}.ms`]
      ? `  ${label.padEnd(34)} +${at(`${m}.begin`)} … +${at(`${m}.end`)} ms  (${ms(med(`${m}.ms`))})`
      : `  ${label.padEnd(34)} n/a (no per-call debug log lines)`;
  return [
    "",
    `timeline of our \`ctr run --rm … /bin/true\` — containerd at debug level, ${tl.runs} runs, medians in ms from ctr's start:`,
    `  ${'serve logs "shim serving"'.padEnd(34)} +${med("serving")?.toFixed(0) ?? "n/a"} ms`,
    span("create", "Create (runc create)"),
    span("start", "Start (runc start)"),
    span("wait", "Wait (until /bin/true exits)"),
    span("delete", "Delete (runc delete)"),
    span("shutdown", "Shutdown"),
    `  ${"ctr exits".padEnd(34)} +${med("exit")?.toFixed(0)} ms  (${ms(med("afterShutdown"))} after Shutdown: containerd 1.6 waits for \`shim delete\`)`,
    `  (the Go shim's runs in the same containerd: median ${ms(tl.goRun.median)})`,
  ];
}

export function report(r: BenchResult): string {
  const e = r.env;
  const lines = [
    `bench-shim: node ${e.node}, ${e.containerd}, runc ${e.runc}, ${e.cpus} CPUs, load ${e.loadBefore.join(" ")} → ${e.loadAfter?.join(" ")}`,
    `  our shim: ${e.shim} (${e.shimBytes} bytes, built ${e.shimBuilt})`,
  ];
  if (r.run) lines.push(...runLines(r.run));
  for (const m of r.mem ?? []) lines.push(...memLines(m));
  if (r.start) lines.push(...startLines(r.start));
  if (r.burst) lines.push(...burstLines(r.burst));
  if (r.timeline) lines.push(...timelineLines(r.timeline));
  if (r.standalone) lines.push(...standaloneLines(r.standalone));
  if (r.profile) {
    lines.push("", `CPU profiles of our shim (3 by hand + 3 ctr runs, 100 µs sampling) in ${r.profile.dir}:`);
    lines.push(formatSummary(r.profile.profiles));
  }
  return lines.join("\n");
}
