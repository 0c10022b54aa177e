// scripts/bench-shim: our shim (containerd-shim-tsrunc-v2) against the Go containerd-shim-runc-v2,
// both under one private containerd 1.6 in the same run (the test harness's: tmpfs temp root,
// own sockets, CRI disabled, a clean environment).
//
//   run       `ctr run --rm --runtime <rt> --rootfs DIR id /bin/true` wall time, interleaved Go/ours.
//   mem       RSS/PSS/USS of each shim (/proc/PID/smaps_rollup) with N idle `/bin/sleep` containers
//             per runtime, after a settle time, for each N of --idle (containers are added up to
//             each count); up to 10 bare idle Node processes alongside as the floor. The settle
//             time (12 s) lets V8's memory reducer shrink an idle server's heap: after 2 s our
//             shim still held ~2 MB of start-up garbage that it gives back by itself within ~10 s.
//   start     where our start time goes: `node -e 0`, the bundle alone (`-v`), `start` alone, start
//             until the serve process answers a Task.Connect, and `delete`; the Go shim's likewise.
//   timeline  one `ctr run --rm` of ours step by step (serving, Create, Start, Wait, Delete,
//             Shutdown, ctr's exit) from the shim's debug log, under a second containerd at debug.
//
//   standalone  the single-file shim (--sea, dist/sea) against the launcher (--shim's dir), both
//             under one more containerd: interleaved `ctr run --rm`, idle PSS per shim at the first
//             --idle count, size on disk (standalone.ts).
//
//   burst     N containers started at once (`ctr run -d` in parallel), then exec'd at once
//             (`ctr task exec`), then removed at once (`ctr task rm -f` + `ctr containers rm`):
//             wall time of each phase, Go's batch then ours, every container must succeed.
//
// Usage: scripts/bench-shim [--runs N] [--warmup N] [--idle N,M,...] [--settle-ms N] [--starts N]
//          [--burst N] [--timeline-runs N] [--only run,mem,start,burst,timeline,standalone]
//          [--shim PATH] [--sea PATH]
//          [--profile DIR] [--json]
//          [--containerd-env K=V ...]
// Exits non-zero only when something fails (a ctr run, a shim, the cleanup), not when a goal is missed.

import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { execa } from "execa";
import { findScopeProcesses } from "../../../test/helpers/cleanup.js";
import { argValue, type Containerd, startContainerd } from "../../../test/helpers/containerd.js";
import { waitFor } from "../../../test/helpers/wait.js";
import {
  BenchHarness,
  benchEnv,
  intOption,
  loadNow,
  message,
  printResult,
  sectionsOption,
} from "../lib/bench-harness.js";
import { alive, cmdline, ms, ratio, sleep, smapsRollup, summary, threadCount } from "./measure.js";
import { here, repo, TS_NAME } from "./paths.js";
import { buildProfilingBundle, type ShimFiles, summarize } from "./profile.js";
import {
  type BenchResult,
  type BurstResult,
  type BurstRuntimeResult,
  GO_RT,
  GROUPED_NAME,
  GROUPED_RT,
  type MemResult,
  type MemSummary,
  type RunResult,
  report,
  type ShimMemory,
  START_ROWS,
  type StartResult,
  type StartRow,
  TIMELINE_METHODS,
  type TimelineResult,
  type TimelineStep,
  TS_RT,
} from "./report.js";
import { shimRound } from "./shim-round.js";
import { benchStandalone } from "./standalone.js";

const GO_SHIM = "/usr/bin/containerd-shim-runc-v2";

const { values: opt } = parseArgs({
  options: {
    runs: { type: "string", default: "12" },
    warmup: { type: "string", default: "2" },
    idle: { type: "string", default: "10,50" },
    burst: { type: "string", default: "100" },
    "settle-ms": { type: "string", default: "12000" },
    starts: { type: "string", default: "10" },
    only: { type: "string", default: "run,mem,start,burst,timeline,standalone" },
    "timeline-runs": { type: "string", default: "5" },
    shim: { type: "string", default: join(repo, "packages/shim-runc-v2/dist/bin", TS_NAME) },
    sea: { type: "string", default: join(repo, "packages/shim-runc-v2/dist/sea", TS_NAME) },
    profile: { type: "string" },
    json: { type: "boolean", default: false },
    "containerd-env": { type: "string", multiple: true, default: [] },
  },
});
const RUNS = intOption(opt, "runs", 1);
const WARMUP = intOption(opt, "warmup", 0);
/** The container counts at which idle memory is measured (containers are added up to each). */
const IDLE = opt.idle
  .split(",")
  .map((v) => Number(v))
  .sort((a, b) => a - b);
if (!IDLE.length || IDLE.some((n) => !Number.isInteger(n) || n < 1))
  throw new Error("--idle must be a list of integers >= 1 (e.g. 10,50)");
const BURST = intOption(opt, "burst", 1);
const SETTLE_MS = intOption(opt, "settle-ms", 0);
const STARTS = intOption(opt, "starts", 1);
const TIMELINE_RUNS = intOption(opt, "timeline-runs", 1);
const SECTIONS = sectionsOption(opt.only, ["run", "mem", "start", "burst", "timeline", "standalone"]);
const SHIM_SRC = resolve(opt.shim);
const ADDON_SRC = join(dirname(SHIM_SRC), "tsrunc_native.node");
const PATH = process.env.PATH ?? "/usr/bin:/bin";
/** --containerd-env K=V (repeatable): added to the main containerd's environment, so its shims
 * inherit it (e.g. NODE_EXTRA_CA_CERTS, as a containerd started from a login shell has). */
const CONTAINERD_ENV: Record<string, string> = Object.fromEntries(
  (opt["containerd-env"] ?? []).map((kv) => {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new Error(`--containerd-env ${kv}: expected K=V`);
    return [kv.slice(0, eq), kv.slice(eq + 1)];
  }),
);

// ---------------------------------------------------------------------------------------------
// The harness's `t` and the end of the run: the containerds (stop() is idempotent: the harness's
// own teardown then finds nothing left to do), then the teardowns (LIFO).

const h = new BenchHarness<Containerd>("bench-shim");
const { note, t } = h;

interface Bench {
  cd: Containerd;
  /** Where containerd finds our shim (first on its shims' PATH). */
  bin: string;
  rootfs: string;
}

/** A private containerd with our shim installed as <root>/opt/bin (first on the shims' PATH). */
async function containerd(
  env: Record<string, string> = {},
  shim: ShimFiles = { shim: SHIM_SRC, addon: ADDON_SRC },
  logLevel: "info" | "debug" = "info",
): Promise<Bench> {
  const cd = await startContainerd(t, { logLevel, env });
  h.containerds.push(cd);
  const bin = join(cd.root, "opt/bin");
  mkdirSync(bin, { recursive: true });
  // A copy, as scripts/install makes: a rebuild by someone else mid-run changes nothing here.
  copyFileSync(shim.shim, join(bin, TS_NAME));
  copyFileSync(shim.addon, join(bin, "tsrunc_native.node"));
  // The launcher compiles the bundle beside it with its code cache (when it has one).
  for (const f of ["tsrunc-shim.js", "tsrunc-shim.cache"]) {
    const src = join(dirname(shim.shim), f);
    if (existsSync(src)) copyFileSync(src, join(bin, f));
  }
  chmodSync(join(bin, TS_NAME), 0o755);
  // Grouped mode: the runtime io.containerd.tsrunc-grouped.v2 is our binary under another name.
  symlinkSync(TS_NAME, join(bin, GROUPED_NAME));
  return { cd, bin, rootfs: cd.rootfs() };
}

const CTR_TIMEOUT_MS = 30000;

async function ctrRun(cd: Containerd, args: string[], what: string): Promise<number> {
  const t0 = performance.now();
  const r = await cd.ctr(args, { timeout: CTR_TIMEOUT_MS });
  const dt = performance.now() - t0;
  if (r.exitCode !== 0) {
    const how = r.timedOut ? `timed out after ${ms(dt)}` : `exit ${r.exitCode} after ${ms(dt)}`;
    // containerd's and the shim's log lines about this container: what the shim got to.
    const id = args.at(-2) === "/bin/sleep" ? args.at(-3) : args.at(-2);
    const log = cd
      .logTail(2000)
      .split("\n")
      .filter((l) => l.includes(`"${id}"`) || l.includes(`id=${id}`) || l.includes(`/${id} `))
      .join("\n");
    throw new Error(`${what}: ${r.command}: ${how}: ${r.stderr.trim()}\n${log}`);
  }
  return dt;
}

/** Live shim processes of this containerd (its `-address` is in their argv). */
function shimProcs(cd: Containerd) {
  return findScopeProcesses(cd.scope, false).filter((p) =>
    p.argv.some((a) => a.includes("containerd-shim-")),
  );
}

// ---------------------------------------------------------------------------------------------
// 1. ctr run --rm latency

async function benchRun({ cd, rootfs }: Bench): Promise<RunResult> {
  const run = (rt: string, id: string) =>
    ctrRun(cd, ["run", "--rm", "--runtime", rt, "--rootfs", rootfs, id, "/bin/true"], `run ${rt}`);
  // Grouped mode's runs join a group that already has a live shim (one idle container of the
  // namespace's group), as every container but a group's first does.
  await ctrRun(
    cd,
    ["run", "-d", "--runtime", GROUPED_RT, "--rootfs", rootfs, "r-gr-keeper", "/bin/sleep", "1000"],
    "grouped keeper",
  );
  for (let i = 0; i < WARMUP; i++) {
    await run(GO_RT, `w-go-${i}`);
    await run(TS_RT, `w-ts-${i}`);
    await run(GROUPED_RT, `w-gr-${i}`);
  }
  const go: number[] = [];
  const ts: number[] = [];
  const gr: number[] = [];
  // A failed run (e.g. a shim that hangs) is reported and left out; the bench goes on and fails at the end.
  const failures: string[] = [];
  const sample = async (list: number[], rt: string, id: string) => {
    try {
      list.push(await run(rt, id));
    } catch (e) {
      failures.push(message(e));
      note(`FAILED: ${message(e)}`);
    }
  };
  for (let i = 0; i < RUNS; i++) {
    note(`ctr run ${i + 1}/${RUNS}`);
    await sample(go, GO_RT, `r-go-${i}`);
    await sample(ts, TS_RT, `r-ts-${i}`);
    await sample(gr, GROUPED_RT, `r-gr-${i}`);
  }
  await cd.ctr(["task", "rm", "-f", "r-gr-keeper"], { timeout: 20000 });
  await cd.ctr(["containers", "rm", "r-gr-keeper"], { timeout: 20000 });
  // Each shim should be gone once `ctr run --rm` returns (Delete, then Shutdown); give ours a moment
  // (the group's server lingers 1 s after its last container).
  const left = await waitFor(() => shimProcs(cd).length === 0, {
    what: "shims to exit",
    timeoutMs: 5000,
    intervalMs: 50,
  }).then(
    () => 0,
    () => shimProcs(cd).length,
  );
  const goS = summary(go);
  const tsS = summary(ts);
  const grS = summary(gr);
  return {
    runs: RUNS,
    warmup: WARMUP,
    go: { ...goS, samples: go },
    ours: { ...tsS, samples: ts },
    grouped: { ...grS, samples: gr },
    ratio: { median: ratio(tsS.median, goS.median), p90: ratio(tsS.p90, goS.p90) },
    groupedRatio: { median: ratio(grS.median, goS.median), p90: ratio(grS.p90, goS.p90) },
    shimsLeftAfterRuns: left,
    failures,
  };
}

// ---------------------------------------------------------------------------------------------
// 2. idle memory

/**
 * The long-lived shim process serving container `id` (the Go shim of containerd 1.6 writes no
 * shim.pid, so both are found by their argv: `-id ID`, not the `start` verb).
 */
function shimPidOf(cd: Containerd, id: string): number | undefined {
  const found = shimProcs(cd).filter((p) => argValue(p.argv, "id") === id && p.argv.at(-1) !== "start");
  return found.length === 1 ? found[0]?.pid : undefined;
}

function memSummary(rows: readonly ShimMemory[]): MemSummary {
  type Field = "Pss" | "Rss" | "Uss" | "Pss_Anon" | "Pss_File";
  const pick = (k: Field) => summary(rows.map((r) => r[k] ?? 0));
  const total = (k: Field) => rows.reduce((a, r) => a + (r[k] ?? 0), 0);
  return {
    n: rows.length,
    pssKiB: pick("Pss"),
    rssKiB: pick("Rss"),
    ussKiB: pick("Uss"),
    pssAnonKiB: pick("Pss_Anon"),
    pssFileKiB: pick("Pss_File"),
    threads: summary(rows.map((r) => r.threads ?? 0)),
    totalPssKiB: total("Pss"),
    totalRssKiB: total("Rss"),
  };
}

async function benchMem({ cd, rootfs }: Bench): Promise<MemResult[]> {
  const kinds = [
    ["go", GO_RT],
    ["ts", TS_RT],
    ["gr", GROUPED_RT],
  ] as const;
  const ids = { go: [] as string[], ts: [] as string[], gr: [] as string[] };
  const startMs = { go: [] as number[], ts: [] as number[], gr: [] as number[] };
  const bare: Array<ReturnType<typeof execa>> = [];
  const results: MemResult[] = [];
  try {
    for (const count of IDLE) {
      for (let i = ids.go.length; i < count; i++) {
        note(`idle container ${i + 1}/${count}`);
        for (const [k, rt] of kinds) {
          const id = `m-${k}-${i}`;
          ids[k].push(id);
          startMs[k].push(
            await ctrRun(
              cd,
              ["run", "-d", "--runtime", rt, "--rootfs", rootfs, id, "/bin/sleep", "1000"],
              rt,
            ),
          );
        }
        // The floor: a bare Node process that only keeps its loop alive (10 are enough). The temp
        // root in its argv puts it in the harness's sweep scope.
        if (bare.length < 10)
          bare.push(
            execa(process.execPath, ["-e", "setInterval(() => {}, 1 << 30)", join(cd.root, "bare-node")], {
              env: { PATH },
              extendEnv: false,
              stdio: "ignore",
              reject: false,
            }),
          );
      }
      await sleep(SETTLE_MS);
      results.push(measureIdle(cd, ids, bare, startMs));
    }
    return results;
  } finally {
    for (const p of bare) p.kill("SIGKILL");
    await Promise.allSettled(bare);
    // Graceful removal (kill, delete, containers rm), four at a time; the sweep catches the rest.
    const all = [...ids.go, ...ids.ts, ...ids.gr];
    const errors: string[] = [];
    const worker = async () => {
      for (let id = all.shift(); id !== undefined; id = all.shift()) {
        const rm = await cd.ctr(["task", "rm", "-f", id], { timeout: 20000 });
        const crm = await cd.ctr(["containers", "rm", id], { timeout: 20000 });
        if (crm.exitCode !== 0) errors.push(`${id}: ${rm.stderr.trim()} ${crm.stderr.trim()}`);
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    if (errors.length) note(`removing idle containers: ${errors.join("; ")}`);
  }
}

function measureIdle(
  cd: Containerd,
  ids: { go: string[]; ts: string[]; gr: string[] },
  bare: Array<ReturnType<typeof execa>>,
  startMs: { go: number[]; ts: number[]; gr: number[] },
): MemResult {
  const measure = (k: "go" | "ts", expect: string): ShimMemory[] =>
    ids[k].map((id) => {
      const pid = shimPidOf(cd, id);
      if (!pid || !alive(pid)) throw new Error(`shim of ${id} (pid ${pid}) is not running`);
      const argv = cmdline(pid).join(" ");
      if (!argv.includes(expect)) throw new Error(`pid ${pid} of ${id} is not a ${expect}: ${argv}`);
      const m = smapsRollup(pid);
      if (!m) throw new Error(`cannot read /proc/${pid}/smaps_rollup`);
      return { id, pid, ...m, threads: threadCount(pid) };
    });
  const go = measure("go", "containerd-shim-runc-v2");
  const ts = measure("ts", TS_NAME);
  const bareRows = bare.map((p): ShimMemory => {
    const pid = p.pid ?? 0;
    return { pid, ...smapsRollup(pid), threads: threadCount(pid) };
  });
  const goM = memSummary(go);
  const tsM = memSummary(ts);
  // Grouped: one server (started with the group's first container's id) for all of them.
  const grPid = ids.gr[0] ? shimPidOf(cd, ids.gr[0]) : undefined;
  const grOthers = ids.gr.slice(1).filter((id) => shimPidOf(cd, id) !== undefined);
  if (!grPid || grOthers.length)
    throw new Error(`grouped: expected one server, found ${grOthers.length + 1}`);
  const grMem = smapsRollup(grPid);
  if (!grMem) throw new Error(`cannot read /proc/${grPid}/smaps_rollup`);
  const grPerContainer = (grMem.Pss ?? 0) / ids.gr.length;
  return {
    idle: ids.go.length,
    grouped: {
      pid: grPid,
      ...grMem,
      threads: threadCount(grPid),
      perContainerPssKiB: grPerContainer,
      ratioToGoPss: ratio(grPerContainer, goM.pssKiB.median),
      runDetached: summary(startMs.gr),
    },
    settleMs: SETTLE_MS,
    go: goM,
    ours: tsM,
    bareNode: memSummary(bareRows),
    ratio: {
      pss: ratio(tsM.pssKiB.median, goM.pssKiB.median),
      rss: ratio(tsM.rssKiB.median, goM.rssKiB.median),
      uss: ratio(tsM.ussKiB.median, goM.ussKiB.median),
    },
    runDetached: { go: summary(startMs.go), ours: summary(startMs.ts) },
    perShim: { go, ours: ts },
  };
}

// ---------------------------------------------------------------------------------------------
// 2b. burst: BURST containers started at once, exec'd at once, removed at once; Go's batch, then
// ours, in the same containerd. Every ctr must succeed; a failure is counted and reported.

async function burstBatch(
  cd: Containerd,
  rootfs: string,
  rt: string,
  prefix: string,
): Promise<BurstRuntimeResult> {
  const ids = Array.from({ length: BURST }, (_, i) => `${prefix}-${i}`);
  const failures: string[] = [];
  const phase = async (what: string, one: (id: string) => Promise<void>) => {
    note(`burst ${rt}: ${what} ×${BURST}`);
    const t0 = performance.now();
    await Promise.all(
      ids.map((id) =>
        one(id).catch((e) => {
          failures.push(`${what} ${id}: ${message(e).split("\n")[0]}`);
        }),
      ),
    );
    return performance.now() - t0;
  };
  const ok = async (args: string[]) => {
    const r = await cd.ctr(args, { timeout: 120_000 });
    if (r.exitCode !== 0) throw new Error(`ctr ${args.join(" ")}: exit ${r.exitCode}: ${r.stderr.trim()}`);
  };
  const runMs = await phase("ctr run -d", (id) =>
    ok(["run", "-d", "--runtime", rt, "--rootfs", rootfs, id, "/bin/sleep", "1000"]),
  );
  const execMs = await phase("ctr task exec", (id) =>
    ok(["task", "exec", "--exec-id", "e1", id, "/bin/true"]),
  );
  const rmMs = await phase("ctr task rm -f + containers rm", async (id) => {
    await ok(["task", "rm", "-f", id]);
    await ok(["containers", "rm", id]);
  });
  return { runMs, execMs, rmMs, totalMs: runMs + execMs + rmMs, failures };
}

async function benchBurst({ cd, rootfs }: Bench): Promise<BurstResult> {
  const go = await burstBatch(cd, rootfs, GO_RT, "b-go");
  const ours = await burstBatch(cd, rootfs, TS_RT, "b-ts");
  const grouped = await burstBatch(cd, rootfs, GROUPED_RT, "b-gr");
  // Nothing may be left running: each shim exits after its container's removal.
  const left = await waitFor(() => shimProcs(cd).length === 0, {
    what: "burst shims to exit",
    timeoutMs: 10_000,
    intervalMs: 100,
  }).then(
    () => 0,
    () => shimProcs(cd).length,
  );
  return {
    n: BURST,
    go,
    ours,
    grouped,
    groupedRatio: ratio(grouped.totalMs, go.totalMs),
    ratio: {
      run: ratio(ours.runMs, go.runMs),
      exec: ratio(ours.execMs, go.execMs),
      rm: ratio(ours.rmMs, go.rmMs),
      total: ratio(ours.totalMs, go.totalMs),
    },
    shimsLeft: left,
  };
}

// ---------------------------------------------------------------------------------------------
// 3. start breakdown: each shim's `start` run by hand, as containerd runs it (cwd = a bundle,
// TTRPC_ADDRESS = this containerd's ttrpc socket), then a Task.Connect on the address it printed
// (see shim-round.ts).

async function timed(file: string, args: string[]): Promise<number> {
  const t0 = performance.now();
  const r = await execa(file, args, { env: { PATH }, extendEnv: false, reject: false });
  const dt = performance.now() - t0;
  if (r.exitCode !== 0) throw new Error(`${file} ${args.join(" ")}: exit ${r.exitCode}: ${r.stderr}`);
  return dt;
}

async function benchStart({ cd, bin }: Bench): Promise<StartResult> {
  const ours = join(bin, TS_NAME);
  const rows = Object.fromEntries(START_ROWS.map((k) => [k, [] as number[]])) as Record<StartRow, number[]>;
  // One untimed round first: page cache and the like.
  await shimRound(cd, ours, "s-ts-warm");
  await shimRound(cd, GO_SHIM, "s-go-warm");
  for (let i = 0; i < STARTS; i++) {
    note(`start breakdown ${i + 1}/${STARTS}`);
    rows.nodeBare.push(await timed(process.execPath, ["-e", "0"]));
    rows.oursVersion.push(await timed(ours, ["-v"]));
    rows.goVersion.push(await timed(GO_SHIM, ["-v"]));
    const o = await shimRound(cd, ours, `s-ts-${i}`);
    rows.oursStart.push(o.startMs);
    rows.oursConnect.push(o.connectMs);
    rows.oursDelete.push(o.deleteMs);
    rows.oursDeleteClean.push(o.deleteCleanMs);
    const g = await shimRound(cd, GO_SHIM, `s-go-${i}`);
    rows.goStart.push(g.startMs);
    rows.goConnect.push(g.connectMs);
    rows.goDelete.push(g.deleteMs);
  }
  const afterStart = (connect: number[], start: number[]) =>
    summary(connect.map((c, i) => c - (start[i] ?? Number.NaN)));
  return {
    starts: STARTS,
    ...(Object.fromEntries(START_ROWS.map((k) => [k, summary(rows[k])])) as Record<
      StartRow,
      ReturnType<typeof summary>
    >),
    oursServeAfterStart: afterStart(rows.oursConnect, rows.oursStart),
    goServeAfterStart: afterStart(rows.goConnect, rows.goStart),
  };
}

// ---------------------------------------------------------------------------------------------
// 4. timeline of our `ctr run --rm`: a second containerd at debug level (it then starts shims with
// -debug, and ours logs each Task call with its duration); the shim's log lines, which containerd
// copies into its own log, put each step on ctr's clock. Go runs interleaved for the same load.

/** What the timeline reads of one of our shim's JSON log lines. */
interface ShimLogLine {
  id?: string;
  msg?: string;
  time?: string;
  method?: string;
  ms?: number;
}

function shimLogLines(cd: Containerd, id: string): ShimLogLine[] {
  const out: ShimLogLine[] = [];
  for (const line of readFileSync(cd.logPath, "utf8").split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const j = JSON.parse(line) as ShimLogLine;
      if (j.id === id) out.push(j);
    } catch {
      // not one of the shim's lines
    }
  }
  return out;
}

async function benchTimeline(): Promise<TimelineResult> {
  const { cd, rootfs } = await containerd({}, undefined, "debug");
  const runs: Array<{ id: string; t0: number; end: number }> = [];
  const go: number[] = [];
  for (let i = -1; i < TIMELINE_RUNS; i++) {
    note(`timeline ${i + 2}/${TIMELINE_RUNS + 1}`);
    const goMs = await ctrRun(
      cd,
      ["run", "--rm", "--runtime", GO_RT, "--rootfs", rootfs, `t-go-${i + 1}`, "/bin/true"],
      "timeline run (go)",
    );
    const id = `t-ts-${i + 1}`;
    const t0 = Date.now();
    await ctrRun(
      cd,
      ["run", "--rm", "--runtime", TS_RT, "--rootfs", rootfs, id, "/bin/true"],
      "timeline run",
    );
    const end = Date.now() - t0;
    if (i < 0) continue; // warm-up
    go.push(goMs);
    runs.push({ id, t0, end });
  }
  await sleep(300); // the last log lines
  const steps = new Map<TimelineStep, number[]>();
  const add = (k: TimelineStep, v: number) => {
    if (!Number.isFinite(v)) return;
    steps.set(k, [...(steps.get(k) ?? []), v]);
  };
  const methods: readonly string[] = TIMELINE_METHODS;
  for (const r of runs) {
    const at = (j: ShimLogLine | undefined) => Date.parse(j?.time ?? "") - r.t0;
    const lines = shimLogLines(cd, r.id);
    add("serving", at(lines.find((j) => j.msg === "shim serving")));
    const seen = new Set<string>(); // the first call of each method (containerd may repeat State/Connect)
    for (const j of lines) {
      // The tracing interceptor logs the wire name ("Create"); older shims logged the handler's ("create").
      const m = lowerFirst(j.method) as (typeof TIMELINE_METHODS)[number];
      if (j.msg !== "call" || typeof j.ms !== "number" || !methods.includes(m) || seen.has(m)) continue;
      seen.add(m);
      add(`${m}.begin`, at(j) - j.ms);
      add(`${m}.ms`, j.ms);
      add(`${m}.end`, at(j));
    }
    add("exit", r.end);
    const shutdown = lines.find((j) => j.msg === "call" && lowerFirst(j.method) === "shutdown");
    if (shutdown) add("afterShutdown", r.end - at(shutdown));
  }
  const out: TimelineResult = { runs: runs.length, goRun: summary(go) };
  for (const [k, v] of steps) out[k] = summary(v);
  return out;
}

// ---------------------------------------------------------------------------------------------
// --profile DIR: V8 CPU profiles of our shim's processes (start and serve), with a source-mapped
// copy of the bundle (same esbuild options) so that time is attributed to source files and
// packages: once started by hand, and through `ctr run --rm` (a second containerd whose env
// carries NODE_OPTIONS to the shims; start passes its env on to serve). Not timed.

async function profile(dirArg: string): Promise<NonNullable<BenchResult["profile"]>> {
  const dir = resolve(dirArg);
  mkdirSync(dir, { recursive: true });
  const bundle = await buildProfilingBundle(dir);
  const profEnv = {
    NODE_OPTIONS: `--require ${join(here, "cpuprof.cjs")}`,
    // start gives the server a scrubbed environment (no NODE_*) unless asked to keep it.
    TSRUNC_KEEP_NODE_ENV: "1",
    BENCH_SHIM_CPUPROF_DIR: dir,
  };
  const { cd, bin, rootfs } = await containerd(profEnv, bundle);
  for (let i = 0; i < 3; i++) {
    note(`profile ${i + 1}/3`);
    await shimRound(cd, join(bin, TS_NAME), `p-direct-${i}`, profEnv);
    await ctrRun(
      cd,
      ["run", "--rm", "--runtime", TS_RT, "--rootfs", rootfs, `p-run-${i}`, "/bin/true"],
      "profiled run",
    );
  }
  await waitFor(() => shimProcs(cd).length === 0, {
    what: "profiled shims to exit",
    timeoutMs: 5000,
    intervalMs: 50,
  });
  const errors = await cd.stop();
  if (errors.length) throw new Error(`cleanup of the profiling containerd: ${errors.join("; ")}`);
  return { dir, profiles: summarize(dir) };
}

// ---------------------------------------------------------------------------------------------

/** Runs the sections; failed `ctr run`s of the run section are added to `failures`. */
async function bench(failures: string[]): Promise<BenchResult> {
  statSync(ADDON_SRC);
  const st = statSync(SHIM_SRC);
  const result: BenchResult = {
    env: { ...(await benchEnv()), shim: SHIM_SRC, shimBytes: st.size, shimBuilt: st.mtime.toISOString() },
  };
  const main = await containerd(CONTAINERD_ENV);
  if (SECTIONS.has("run")) {
    result.run = await benchRun(main);
    failures.push(...result.run.failures);
  }
  if (SECTIONS.has("mem")) result.mem = await benchMem(main);
  if (SECTIONS.has("start")) result.start = await benchStart(main);
  if (SECTIONS.has("burst")) {
    result.burst = await benchBurst(main);
    failures.push(
      ...result.burst.go.failures,
      ...result.burst.ours.failures,
      ...result.burst.grouped.failures,
    );
    if (result.burst.shimsLeft) failures.push(`burst: ${result.burst.shimsLeft} shim(s) left running`);
  }
  if (SECTIONS.has("timeline")) result.timeline = await benchTimeline();
  if (SECTIONS.has("standalone")) {
    result.standalone = await benchStandalone(h, {
      launcherDir: dirname(SHIM_SRC),
      seaFile: resolve(opt.sea),
      runs: RUNS,
      warmup: Math.max(WARMUP, 1),
      idle: IDLE[0] ?? 10,
      settleMs: SETTLE_MS,
      env: CONTAINERD_ENV,
    });
    failures.push(...result.standalone.failures);
  }
  if (opt.profile) result.profile = await profile(opt.profile);
  result.env.loadAfter = loadNow();
  return result;
}

let result: BenchResult | undefined;
const failures: string[] = [];
const { code } = await h.run(async () => {
  result = await bench(failures);
}, failures);
if (result) printResult(result, opt.json, report);
process.exit(code);

function lowerFirst(v: unknown): string {
  return typeof v === "string" ? v.charAt(0).toLowerCase() + v.slice(1) : "";
}
