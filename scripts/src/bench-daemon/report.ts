// The bench's result (also its --json output), the goals, and the report printed from it.

import { mb, ms, type Summary } from "../bench-shim/measure.js";

export const GO_RT = "io.containerd.runc.v2";
export const GOALS = { runRatio: 1.0, servingMs: 1000, tsruncdRssMiB: 60 };

export interface EnvInfo {
  node: string;
  containerd: string;
  runc: string;
  cpus: number;
  installedFrom: string;
  built: { shim: string; tsruncd: string; tsctl: string };
  loadBefore: string[];
  loadAfter?: string[];
}

export interface RunResult {
  runs: number;
  warmup: number;
  ours: Summary & { samples: number[] };
  go: Summary & { samples: number[] };
  ratio: { median: number; p90: number };
  failures: string[];
}

/** The rows of the breakdown, in order; indented ones are parts of the row above them. */
export const BREAKDOWN_ROWS = [
  "startup",
  "startupConnect",
  "containersCreate",
  "clientStdio",
  "tasksCreate",
  "tcBundle",
  "tcShimStart",
  "tcShimCreate",
  "tcShimCreateCall",
  "tcShimCreateWait",
  "clientWaitStart",
  "tasksStart",
  "tsShimStartCall",
  "startToWait",
  "runUntilExit",
  "exitToWait",
  "clientAfterWait",
  "tasksDelete",
  "tdShimDeleteCall",
  "tdRest",
  "clientBetweenDeletes",
  "containersDelete",
  "exit",
  "total",
] as const;
export type BreakdownRow = (typeof BREAKDOWN_ROWS)[number];

const ROW_LABELS: Record<BreakdownRow, string> = {
  startup: "tsctl start-up until its first request",
  startupConnect: "  of which until it connects",
  containersCreate: "Containers.Create",
  clientStdio: "tsctl: stdio fifos",
  tasksCreate: "Tasks.Create",
  tcBundle: "  bundle (config.json, log fifo)",
  tcShimStart: "  shim `start` (exec → address printed) + connect",
  tcShimCreate: "  shim Task.Create round trip",
  tcShimCreateCall: "    in the shim's handler (runc create)",
  tcShimCreateWait: "    before/after the handler (serve still booting)",
  clientWaitStart: "tsctl: Wait sent, then Start",
  tasksStart: "Tasks.Start",
  tsShimStartCall: "  in the shim's Start handler (runc start)",
  startToWait: "Start answered → Tasks.Wait returns",
  runUntilExit: "  /bin/true exits, tsruncd relays it",
  exitToWait: "  exit relayed → Wait returns (±1 ms)",
  clientAfterWait: "tsctl: io drained, until Tasks.Delete",
  tasksDelete: "Tasks.Delete",
  tdShimDeleteCall: "  in the shim's Delete handler (runc delete)",
  tdRest: "  the rest: Shutdown, close, bundle removal",
  clientBetweenDeletes: "tsctl: between the two deletes",
  containersDelete: "Containers.Delete (--rm)",
  exit: "tsctl exits after the last reply",
  total: "total: spawn → exit",
};

export interface BreakdownResult {
  runs: number;
  rows: Record<BreakdownRow, Summary>;
  /** Calls tsctl made besides the six of a run. */
  otherCalls: Record<string, Summary>;
  nodeBare: Summary;
  tsctlHelp: Summary;
}

export interface ReconnectSample {
  /** Spawn → the bench read the "tsruncd serving" line. */
  servingMs: number;
  /** Spawn → that line's own `time`. */
  servingLoggedMs: number;
  /** Spawn → the bench read the "boot reconcile done" line. */
  bootDoneMs: number;
  /** That line's `ms` (the reconcile alone). */
  bootMs: number;
  reattached: number;
  dead: number;
  /** Spawn → the end of the first `tsctl tasks ls` that lists all N RUNNING. */
  allRunningMs: number;
  /** How long the first `tasks ls` after serving took. */
  firstLsMs: number;
  polls: number;
  running: number;
  /** Containers whose pid is the one from before the first SIGKILL. */
  samePids: number;
}

export interface ReconnectResult {
  containers: number;
  repeats: number;
  samples: ReconnectSample[];
  servingMs: Summary;
  allRunningMs: Summary;
  bootMs: Summary;
  bootDoneMs: Summary;
}

export interface ProcMemory {
  pid: number;
  rssKiB: number;
  pssKiB: number;
  pssAnonKiB: number;
  pssFileKiB: number;
  ussKiB: number;
  threads: number;
}

export interface ShimsMemory {
  n: number;
  pssKiB: Summary;
  rssKiB: Summary;
  ussKiB: Summary;
  totalPssKiB: number;
}

export interface DaemonMemory extends ProcMemory {
  who: "tsruncd" | "containerd" | "bare node";
  state: string;
  containers: number;
  shims: ShimsMemory;
}

export interface MemResult {
  settleMs: number;
  rows: DaemonMemory[];
  runDetached: { ours?: Summary; go?: Summary };
}

export interface BenchResult {
  env: EnvInfo;
  run?: RunResult;
  breakdown?: BreakdownResult;
  reconnect?: ReconnectResult;
  mem?: MemResult;
  goals: Array<{ goal: string; value: string; met: boolean | undefined }>;
}

const x = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : "n/a");
const verdict = (met: boolean | undefined) => (met === undefined ? "n/a" : met ? "MET" : "MISSED");

function runLines(r: RunResult, goal: BenchResult["goals"][number] | undefined): string[] {
  const row = (name: string, s: Summary) =>
    `  ${name.padEnd(38)} median ${ms(s.median).padStart(8)}  p90 ${ms(s.p90).padStart(8)}  (min ${ms(s.min)}, max ${ms(s.max)})`;
  const lines = [
    "",
    `1. \`run --rm --rootfs DIR id /bin/true\` — ${r.runs} runs each, interleaved (order alternating), after ${r.warmup} warm-up each:`,
    row("ours: tsctl → tsruncd → tsrunc shim", r.ours),
    row("ctr → containerd 1.6 → Go shim", r.go),
    `  ours/ctr: ${x(r.ratio.median)} median, ${x(r.ratio.p90)} p90 — goal ≤ ${GOALS.runRatio.toFixed(1)}×: ${verdict(goal?.met)}`,
  ];
  if (r.failures.length) lines.push(`  FAILED: ${r.failures.length} run(s), left out of the numbers`);
  return lines;
}

function breakdownLines(b: BreakdownResult): string[] {
  const lines = [
    "",
    `  where ours spends its time — ${b.runs} more runs, tsctl through a timing proxy (ttrpc frames timed),`,
    "  tsruncd --log-level debug --debug-shims; medians (top-level rows follow each other and add up to the total):",
  ];
  for (const k of BREAKDOWN_ROWS) {
    const s = b.rows[k];
    const label = ROW_LABELS[k];
    lines.push(
      `    ${label.padEnd(48)} ${s.n ? ms(s.median).padStart(8) : "     n/a"}${s.n ? `  (p90 ${ms(s.p90)})` : ""}`,
    );
  }
  lines.push("    (the shim's exit is placed at the time tsruncd read it from the shim's log fifo: ±1 ms)");
  const sum = BREAKDOWN_ROWS.filter((k) => !ROW_LABELS[k].startsWith(" ") && k !== "total").reduce(
    (a, k) => a + (Number.isFinite(b.rows[k].median) ? b.rows[k].median : 0),
    0,
  );
  lines.push(`    ${"(sum of the top-level medians)".padEnd(48)} ${ms(sum).padStart(8)}`);
  lines.push(
    `    for reference: node -e 0 ${ms(b.nodeBare.median)}, tsctl --help (start-up, no connection) ${ms(b.tsctlHelp.median)}`,
  );
  const others = Object.entries(b.otherCalls);
  if (others.length)
    lines.push(
      `    other calls tsctl made: ${others.map(([k, s]) => `${k} ${ms(s.median)} ×${s.n}`).join(", ")}`,
    );
  return lines;
}

function reconnectLines(r: ReconnectResult, goal: BenchResult["goals"][number] | undefined): string[] {
  const lines = [
    "",
    `2. Reconnect — ${r.containers} running containers (tsctl run -d … sleep), tsruncd SIGKILLed and started again, ${r.repeats}×:`,
  ];
  r.samples.forEach((s, i) => {
    lines.push(
      `  #${i + 1}: "tsruncd serving" after ${ms(s.servingMs)}; "boot reconcile done" after ${ms(s.bootDoneMs)} (reconcile ${ms(s.bootMs)}, reattached ${s.reattached}, dead ${s.dead});` +
        ` all ${s.running}/${r.containers} RUNNING in \`tsctl tasks ls\` after ${ms(s.allRunningMs)} (first ls took ${ms(s.firstLsMs)}, ${s.polls} ls); same pids ${s.samePids}/${r.containers}`,
    );
  });
  lines.push(
    `  spawn → serving: median ${ms(r.servingMs.median)}, worst ${ms(r.servingMs.max)}; → reconciled: median ${ms(r.bootDoneMs.median)}, worst ${ms(r.bootDoneMs.max)}; → all RUNNING listed: median ${ms(r.allRunningMs.median)}, worst ${ms(r.allRunningMs.max)}`,
    `  goal: serving and reconciled < ${GOALS.servingMs} ms (worst of ${r.repeats}): ${verdict(goal?.met)}`,
  );
  return lines;
}

function memLines(m: MemResult, goal: BenchResult["goals"][number] | undefined): string[] {
  const lines = ["", `3. Idle memory after settling ${m.settleMs} ms (/proc/PID/smaps_rollup):`];
  for (const r of m.rows) {
    const shims = r.shims.n
      ? `  | its ${r.shims.n} shims: PSS ${mb(r.shims.pssKiB.median)} each (RSS ${mb(r.shims.rssKiB.median)}, USS ${mb(r.shims.ussKiB.median)}), total PSS ${mb(r.shims.totalPssKiB)}`
      : "";
    lines.push(
      `  ${`${r.who}, ${r.state}`.padEnd(42)} RSS ${mb(r.rssKiB).padStart(8)}  PSS ${mb(r.pssKiB).padStart(8)} (anon ${mb(r.pssAnonKiB)}, file ${mb(r.pssFileKiB)})  USS ${mb(r.ussKiB)}  threads ${r.threads}${shims}`,
    );
  }
  const ours = m.rows.find((r) => r.who === "tsruncd" && r.shims.n > 0);
  const go = m.rows.find((r) => r.who === "containerd" && r.shims.n > 0);
  if (ours && go)
    lines.push(
      `  per shim, PSS: ours ${mb(ours.shims.pssKiB.median)} vs Go's ${mb(go.shims.pssKiB.median)} (${x(ours.shims.pssKiB.median / go.shims.pssKiB.median)}); daemon + shims: tsruncd ${mb(ours.pssKiB + ours.shims.totalPssKiB)} vs containerd ${mb(go.pssKiB + go.shims.totalPssKiB)}`,
    );
  if (m.runDetached.ours && m.runDetached.go)
    lines.push(
      `  (run -d, 4 at a time: tsctl median ${ms(m.runDetached.ours.median)}, ctr median ${ms(m.runDetached.go.median)})`,
    );
  lines.push(
    `  goal: tsruncd RSS < ${GOALS.tsruncdRssMiB} MB with containers: ${verdict(goal?.met)}${goal ? ` (${goal.value})` : ""}`,
  );
  return lines;
}

export function report(r: BenchResult): string {
  const e = r.env;
  const goal = (prefix: string) => r.goals.find((g) => g.goal.startsWith(prefix));
  const lines = [
    `bench-daemon: node ${e.node}, ${e.containerd}, runc ${e.runc}, ${e.cpus} CPUs, load ${e.loadBefore.join(" ")} → ${e.loadAfter?.join(" ") ?? "?"}`,
    `  tsrunc installed with scripts/install from ${e.installedFrom} (built: shim ${e.built.shim}, tsruncd ${e.built.tsruncd}, tsctl ${e.built.tsctl})`,
  ];
  if (r.run) lines.push(...runLines(r.run, goal("run")));
  if (r.breakdown) lines.push(...breakdownLines(r.breakdown));
  if (r.reconnect) lines.push(...reconnectLines(r.reconnect, goal("reconnect")));
  if (r.mem) lines.push(...memLines(r.mem, goal("memory")));
  lines.push("", "goals:");
  for (const g of r.goals) lines.push(`  ${g.goal.padEnd(56)} ${g.value.padStart(9)}  ${verdict(g.met)}`);
  return lines.join("\n");
}
