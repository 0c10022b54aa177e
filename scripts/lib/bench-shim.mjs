// scripts/bench-shim: our shim (containerd-shim-tsrunc-v2) against the Go containerd-shim-runc-v2,
// both under one private containerd 1.6 in the same run (the test harness's: tmpfs temp root,
// own sockets, CRI disabled, a clean environment).
//
//   run       `ctr run --rm --runtime <rt> --rootfs DIR id /bin/true` wall time, interleaved Go/ours.
//   mem       RSS/PSS/USS of each shim (/proc/PID/smaps_rollup) with N idle `/bin/sleep` containers
//             per runtime, after a settle time; N bare idle Node processes alongside as the floor.
//   start     where our start time goes: `node -e 0`, the bundle alone (`-v`), `start` alone, start
//             until the serve process answers a Task.Connect, and `delete`; the Go shim's likewise.
//   timeline  one `ctr run --rm` of ours step by step (serving, Create, Start, Wait, Delete,
//             Shutdown, ctr's exit) from the shim's debug log, under a second containerd at debug.
//
// Usage: scripts/bench-shim [--runs N] [--warmup N] [--idle N] [--settle-ms N] [--starts N]
//          [--timeline-runs N] [--only run,mem,start,timeline] [--shim PATH] [--profile DIR] [--json]
// Exits non-zero only when something fails (a ctr run, a shim, the cleanup), not when a goal is missed.

import {
  chmodSync,
  constants,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { Socket } from "node:net";
import { availableParallelism, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { TaskService } from "@tsrunc/protocol/shim";
import { Client } from "@tsrunc/ttrpc";
import { execa } from "execa";
import { findScopeProcesses, goShimSocketPath } from "../../test/dist/helpers/cleanup.js";
import { argValue, startContainerd } from "../../test/dist/helpers/containerd.js";
import {
  alive,
  cmdline,
  mb,
  ms,
  ratio,
  sleep,
  smapsRollup,
  summary,
  threadCount,
  waitFor,
} from "./bench-shim-measure.mjs";
import { buildProfilingBundle, formatSummary, summarize } from "./bench-shim-profile.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../..");
const GO_RT = "io.containerd.runc.v2";
const TS_RT = "io.containerd.tsrunc.v2";
const GO_SHIM = "/usr/bin/containerd-shim-runc-v2";
const TS_NAME = "containerd-shim-tsrunc-v2";
const GOALS = { runRatio: 1.5, pssRatio: 4 };

const { values: opt } = parseArgs({
  options: {
    runs: { type: "string", default: "12" },
    warmup: { type: "string", default: "2" },
    idle: { type: "string", default: "10" },
    "settle-ms": { type: "string", default: "2000" },
    starts: { type: "string", default: "10" },
    only: { type: "string", default: "run,mem,start,timeline" },
    "timeline-runs": { type: "string", default: "5" },
    shim: { type: "string", default: join(repo, "packages/shim-runc-v2/dist/bin", TS_NAME) },
    profile: { type: "string" },
    json: { type: "boolean", default: false },
  },
});
const int = (name, min) => {
  const n = Number(opt[name]);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}`);
  return n;
};
const RUNS = int("runs", 1);
const WARMUP = int("warmup", 0);
const IDLE = int("idle", 1);
const SETTLE_MS = int("settle-ms", 0);
const STARTS = int("starts", 1);
const TIMELINE_RUNS = int("timeline-runs", 1);
const SECTIONS = new Set(opt.only.split(",").filter(Boolean));
for (const s of SECTIONS)
  if (!["run", "mem", "start", "timeline"].includes(s)) throw new Error(`--only: unknown ${s}`);
const SHIM_SRC = resolve(opt.shim);
const ADDON_SRC = join(dirname(SHIM_SRC), "tsrunc_native.node");

/** Progress on stderr (stdout carries the report or the JSON). */
const note = (msg) => process.stderr.write(`bench-shim: ${msg}\n`);

// ---------------------------------------------------------------------------------------------
// The harness wants a tap-like `t`: teardowns run at the end (and the harness's exit hook sweeps
// on Ctrl-C or a crash); passing() false makes a teardown print containerd's log tail.

let failed = false;
const teardowns = [];
const t = {
  teardown: (fn) => teardowns.push(fn),
  passing: () => !failed,
  ok: () => true,
  comment: () => {},
};
const harnesses = [];
async function runTeardowns() {
  const errors = [];
  // stop() is idempotent: the harness's own teardown then finds nothing left to do.
  for (const cd of harnesses) errors.push(...(await cd.stop()));
  while (teardowns.length) {
    try {
      const r = await teardowns.pop()();
      if (Array.isArray(r)) errors.push(...r);
    } catch (e) {
      errors.push(String(e));
    }
  }
  return errors;
}

/** A private containerd with our shim installed as <root>/opt/bin (first on the shims' PATH). */
async function containerd(env = {}, shim = { shim: SHIM_SRC, addon: ADDON_SRC }, logLevel = "info") {
  const cd = await startContainerd(t, { logLevel, env });
  harnesses.push(cd);
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
  return { cd, bin, rootfs: cd.rootfs() };
}

const CTR_TIMEOUT_MS = 30000;

async function ctrRun(cd, args, what) {
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
function shimProcs(cd) {
  return findScopeProcesses(cd.scope, false).filter((p) =>
    p.argv.some((a) => a.includes("containerd-shim-")),
  );
}

// ---------------------------------------------------------------------------------------------
// 1. ctr run --rm latency

async function benchRun({ cd, rootfs }) {
  const run = (rt, id) =>
    ctrRun(cd, ["run", "--rm", "--runtime", rt, "--rootfs", rootfs, id, "/bin/true"], `run ${rt}`);
  for (let i = 0; i < WARMUP; i++) {
    await run(GO_RT, `w-go-${i}`);
    await run(TS_RT, `w-ts-${i}`);
  }
  const go = [];
  const ts = [];
  // A failed run (e.g. a shim that hangs) is reported and left out; the bench goes on and fails at the end.
  const failures = [];
  const sample = async (list, rt, id) => {
    try {
      list.push(await run(rt, id));
    } catch (e) {
      failures.push(e.message);
      note(`FAILED: ${e.message}`);
    }
  };
  for (let i = 0; i < RUNS; i++) {
    note(`ctr run ${i + 1}/${RUNS}`);
    await sample(go, GO_RT, `r-go-${i}`);
    await sample(ts, TS_RT, `r-ts-${i}`);
  }
  // Each shim should be gone once `ctr run --rm` returns (Delete, then Shutdown); give ours a moment.
  const left = await waitFor(
    "shims to exit",
    () => (shimProcs(cd).length === 0 ? 0 : undefined),
    3000,
    50,
  ).catch(() => shimProcs(cd).length);
  const goS = summary(go);
  const tsS = summary(ts);
  return {
    runs: RUNS,
    warmup: WARMUP,
    go: { ...goS, samples: go },
    ours: { ...tsS, samples: ts },
    ratio: { median: ratio(tsS.median, goS.median), p90: ratio(tsS.p90, goS.p90) },
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
function shimPidOf(cd, id) {
  const found = shimProcs(cd).filter((p) => argValue(p.argv, "id") === id && p.argv.at(-1) !== "start");
  return found.length === 1 ? found[0].pid : undefined;
}

function memSummary(rows) {
  const pick = (k) => summary(rows.map((r) => r[k] ?? 0));
  const total = (k) => rows.reduce((a, r) => a + (r[k] ?? 0), 0);
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

async function benchMem({ cd, rootfs }) {
  const ids = { go: [], ts: [] };
  const startMs = { go: [], ts: [] };
  const bare = [];
  try {
    for (let i = 0; i < IDLE; i++) {
      note(`idle container ${i + 1}/${IDLE}`);
      for (const [k, rt] of [
        ["go", GO_RT],
        ["ts", TS_RT],
      ]) {
        const id = `m-${k}-${i}`;
        ids[k].push(id);
        startMs[k].push(
          await ctrRun(cd, ["run", "-d", "--runtime", rt, "--rootfs", rootfs, id, "/bin/sleep", "1000"], rt),
        );
      }
      // The floor: a bare Node process that only keeps its loop alive. The temp root in its argv
      // puts it in the harness's sweep scope.
      bare.push(
        execa(process.execPath, ["-e", "setInterval(() => {}, 1 << 30)", join(cd.root, "bare-node")], {
          env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
          extendEnv: false,
          stdio: "ignore",
          reject: false,
        }),
      );
    }
    await sleep(SETTLE_MS);
    const measure = (k, expect) =>
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
    const bareRows = bare.map((p) => ({ pid: p.pid, ...smapsRollup(p.pid), threads: threadCount(p.pid) }));
    const goM = memSummary(go);
    const tsM = memSummary(ts);
    return {
      idle: IDLE,
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
  } finally {
    for (const p of bare) p.kill("SIGKILL");
    await Promise.allSettled(bare);
    // Graceful removal (kill, delete, containers rm), four at a time; the sweep catches the rest.
    const all = [...ids.go, ...ids.ts];
    const errors = [];
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

// ---------------------------------------------------------------------------------------------
// 3. start breakdown: each shim's `start` run by hand, as containerd runs it (cwd = a bundle,
// TTRPC_ADDRESS = this containerd's ttrpc socket), then a Task.Connect on the address it printed.

async function timed(file, args, options, mayFail = false) {
  const t0 = performance.now();
  const r = await execa(file, args, { reject: false, ...options });
  const dt = performance.now() - t0;
  if (r.exitCode !== 0 && !mayFail)
    throw new Error(`${file} ${args.join(" ")}: exit ${r.exitCode}: ${r.stderr}`);
  return { dt, t0, stdout: String(r.stdout).trim(), exitCode: r.exitCode };
}

async function startAndConnect(cd, shim, id, extraEnv = {}) {
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
  const logText = [];
  logReader.on("data", (d) => logText.push(String(d)));
  logReader.on("error", () => {});
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    TTRPC_ADDRESS: cd.ttrpcAddress,
    TSRUNC_SOCKET_DIR: join(cd.root, "s"),
    ...extraEnv,
  };
  const flags = [
    "-namespace",
    cd.namespace,
    "-address",
    cd.grpcAddress,
    "-publish-binary",
    "/usr/bin/containerd",
  ];
  cd.scope.sockets.add(goShimSocketPath(cd.grpcAddress, cd.namespace, id));
  try {
    return await startAndConnectIn(cd, { bundle, env, flags, shim, id, logText });
  } finally {
    logReader.destroy();
  }
}

async function startAndConnectIn(cd, { bundle, env, flags, shim, id, logText }) {
  const start = await timed(shim, [...flags, "-id", id, "start"], {
    cwd: bundle,
    env,
    extendEnv: false,
    input: "",
  });
  const address = start.stdout;
  if (!address.startsWith("unix://")) throw new Error(`${shim} start printed ${JSON.stringify(address)}`);
  cd.scope.sockets.add(address.slice("unix://".length));
  const client = await Client.connect(address);
  let connectMs;
  let pid;
  try {
    const task = client.service(TaskService);
    const c = await task.connect({ id }, { timeoutMs: 10000 }).catch((e) => {
      throw new Error(`${shim} (${id}): Task.Connect on ${address}: ${e.message}\n${logText.join("")}`);
    });
    connectMs = performance.now() - start.t0;
    pid = c.shimPid;
    await task.shutdown({ id, now: true }, { timeoutMs: 5000 }).catch(() => {});
  } finally {
    await client.close().catch(() => {});
  }
  // The shim exits on Shutdown; wait for it so the next sample does not share the CPU with it.
  await waitFor(`${shim} serve (pid ${pid}) to exit`, () => (alive(pid) ? undefined : true), 5000);
  // Then `delete`, as containerd 1.6 runs it after every shim exit (its ttrpc client's on-close
  // cleanup) and waits for it before `ctr run --rm` returns. Here no container is left to clean up,
  // as after a normal Delete (the Go shim then exits non-zero: runc finds no container).
  const del = await timed(
    shim,
    [...flags, "-id", id, "-bundle", bundle, "delete"],
    {
      cwd: bundle,
      env,
      extendEnv: false,
      input: "",
      encoding: "buffer",
    },
    true,
  );
  return { startMs: start.dt, connectMs, deleteMs: del.dt };
}

async function benchStart({ cd, bin }) {
  const ours = join(bin, TS_NAME);
  const env = { env: { PATH: process.env.PATH ?? "/usr/bin:/bin" }, extendEnv: false };
  const rows = { nodeBare: [], oursVersion: [], goVersion: [], oursStart: [], oursConnect: [] };
  Object.assign(rows, { oursDelete: [], goStart: [], goConnect: [], goDelete: [] });
  // One untimed round first: page cache and the like.
  await startAndConnect(cd, ours, "s-ts-warm");
  await startAndConnect(cd, GO_SHIM, "s-go-warm");
  for (let i = 0; i < STARTS; i++) {
    note(`start breakdown ${i + 1}/${STARTS}`);
    rows.nodeBare.push((await timed(process.execPath, ["-e", "0"], env)).dt);
    rows.oursVersion.push((await timed(ours, ["-v"], env)).dt);
    rows.goVersion.push((await timed(GO_SHIM, ["-v"], env)).dt);
    const o = await startAndConnect(cd, ours, `s-ts-${i}`);
    rows.oursStart.push(o.startMs);
    rows.oursConnect.push(o.connectMs);
    rows.oursDelete.push(o.deleteMs);
    const g = await startAndConnect(cd, GO_SHIM, `s-go-${i}`);
    rows.goStart.push(g.startMs);
    rows.goConnect.push(g.connectMs);
    rows.goDelete.push(g.deleteMs);
  }
  const out = { starts: STARTS };
  for (const [k, v] of Object.entries(rows)) out[k] = summary(v);
  out.oursServeAfterStart = summary(rows.oursConnect.map((c, i) => c - rows.oursStart[i]));
  out.goServeAfterStart = summary(rows.goConnect.map((c, i) => c - rows.goStart[i]));
  return out;
}

// ---------------------------------------------------------------------------------------------
// 4. timeline of our `ctr run --rm`: a second containerd at debug level (it then starts shims with
// -debug, and ours logs each Task call with its duration); the shim's log lines, which containerd
// copies into its own log, put each step on ctr's clock. Go runs interleaved for the same load.

function shimLogLines(cd, id) {
  const out = [];
  for (const line of readFileSync(cd.logPath, "utf8").split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const j = JSON.parse(line);
      if (j.id === id) out.push(j);
    } catch {
      // not one of the shim's lines
    }
  }
  return out;
}

async function benchTimeline() {
  const { cd, rootfs } = await containerd({}, undefined, "debug");
  const runs = [];
  const go = [];
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
  const steps = {};
  const add = (k, v) => {
    if (!Number.isFinite(v)) return;
    steps[k] ??= [];
    steps[k].push(v);
  };
  for (const r of runs) {
    const at = (j) => Date.parse(j.time) - r.t0;
    const lines = shimLogLines(cd, r.id);
    add("serving", at(lines.find((j) => j.msg === "shim serving") ?? {}));
    const seen = new Set(); // the first call of each method (containerd may repeat State/Connect)
    for (const j of lines) {
      if (j.msg !== "call" || typeof j.ms !== "number") continue;
      const m = j.method;
      if (!["create", "start", "wait", "delete", "shutdown"].includes(m) || seen.has(m)) continue;
      seen.add(m);
      add(`${m}.begin`, at(j) - j.ms);
      add(`${m}.ms`, j.ms);
      add(`${m}.end`, at(j));
    }
    add("exit", r.end);
    const shutdown = lines.find((j) => j.msg === "call" && j.method === "shutdown");
    if (shutdown) add("afterShutdown", r.end - at(shutdown));
  }
  const out = { runs: runs.length, goRun: summary(go) };
  for (const [k, v] of Object.entries(steps)) out[k] = summary(v);
  return out;
}

// ---------------------------------------------------------------------------------------------
// --profile DIR: V8 CPU profiles of our shim's processes (start and serve), with a source-mapped
// copy of the bundle (same esbuild options) so that time is attributed to source files and
// packages: once started by hand, and through `ctr run --rm` (a second containerd whose env
// carries NODE_OPTIONS to the shims; start passes its env on to serve). Not timed.

async function profile(dir) {
  dir = resolve(dir);
  mkdirSync(dir, { recursive: true });
  const bundle = await buildProfilingBundle(dir);
  const profEnv = {
    NODE_OPTIONS: `--require ${join(here, "bench-shim-cpuprof.cjs")}`,
    BENCH_SHIM_CPUPROF_DIR: dir,
  };
  const { cd, bin, rootfs } = await containerd(profEnv, bundle);
  for (let i = 0; i < 3; i++) {
    note(`profile ${i + 1}/3`);
    await startAndConnect(cd, join(bin, TS_NAME), `p-direct-${i}`, profEnv);
    await ctrRun(
      cd,
      ["run", "--rm", "--runtime", TS_RT, "--rootfs", rootfs, `p-run-${i}`, "/bin/true"],
      "profiled run",
    );
  }
  await waitFor("profiled shims to exit", () => (shimProcs(cd).length === 0 ? true : undefined), 5000, 50);
  const errors = await cd.stop();
  if (errors.length) throw new Error(`cleanup of the profiling containerd: ${errors.join("; ")}`);
  return { dir, profiles: summarize(dir) };
}

// ---------------------------------------------------------------------------------------------
// report

function x(v) {
  return Number.isFinite(v) ? `${v.toFixed(2)}×` : "n/a";
}

function verdict(v, goal) {
  return Number.isFinite(v) ? (v <= goal ? `goal ≤ ${goal}×: met` : `goal ≤ ${goal}×: MISSED`) : "";
}

function report(r) {
  const lines = [];
  const e = r.env;
  lines.push(
    `bench-shim: node ${e.node}, ${e.containerd}, runc ${e.runc}, ${e.cpus} CPUs, load ${e.loadBefore.join(" ")} → ${e.loadAfter.join(" ")}`,
  );
  lines.push(`  our shim: ${e.shim} (${e.shimBytes} bytes, built ${e.shimBuilt})`);
  if (r.run) {
    const { go, ours } = r.run;
    lines.push("");
    lines.push(
      `ctr run --rm --rootfs DIR id /bin/true — ${r.run.runs} runs each, interleaved Go/ours, after ${r.run.warmup} warm-up each:`,
    );
    lines.push(
      `  go   ${GO_RT}   median ${ms(go.median)}  p90 ${ms(go.p90)}  (min ${ms(go.min)}, max ${ms(go.max)})`,
    );
    lines.push(
      `  ours ${TS_RT} median ${ms(ours.median)}  p90 ${ms(ours.p90)}  (min ${ms(ours.min)}, max ${ms(ours.max)})`,
    );
    lines.push(
      `  ours/go: ${x(r.run.ratio.median)} median, ${x(r.run.ratio.p90)} p90 — ${verdict(r.run.ratio.median, GOALS.runRatio)}`,
    );
    if (r.run.failures.length)
      lines.push(`  FAILED: ${r.run.failures.length} run(s), left out of the numbers`);
    if (r.run.shimsLeftAfterRuns)
      lines.push(`  WARNING: ${r.run.shimsLeftAfterRuns} shim(s) still running 3 s after the runs`);
  }
  if (r.mem) {
    const m = r.mem;
    const row = (name, s) =>
      `  ${name} PSS ${mb(s.pssKiB.median)} (anon ${mb(s.pssAnonKiB.median)}, file ${mb(s.pssFileKiB.median)})  RSS ${mb(s.rssKiB.median)}  USS ${mb(s.ussKiB.median)}  threads ${s.threads.median}  — total of ${s.n}: PSS ${mb(s.totalPssKiB)}, RSS ${mb(s.totalRssKiB)}`;
    lines.push("");
    lines.push(
      `idle shims — ${m.idle} \`ctr run -d … /bin/sleep\` per runtime, median per process after ${m.settleMs} ms:`,
    );
    lines.push(row("go  ", m.go));
    lines.push(row("ours", m.ours));
    lines.push(row("bare node (setInterval)", m.bareNode));
    lines.push(
      `  ours/go: PSS ${x(m.ratio.pss)}, RSS ${x(m.ratio.rss)}, USS ${x(m.ratio.uss)} — PSS ${verdict(m.ratio.pss, GOALS.pssRatio)}`,
    );
    lines.push(
      `  (ctr run -d: go median ${ms(m.runDetached.go.median)}, ours median ${ms(m.runDetached.ours.median)})`,
    );
  }
  if (r.start) {
    const s = r.start;
    const row = (name, v) =>
      `  ${name.padEnd(44)} median ${ms(v.median).padStart(9)}  p90 ${ms(v.p90).padStart(9)}`;
    lines.push("");
    lines.push(`start breakdown — ${s.starts} rounds, each shim's \`start\` run by hand as containerd does:`);
    lines.push(row("node -e 0", s.nodeBare));
    lines.push(row("ours -v (node + load the bundle, no work)", s.oursVersion));
    lines.push(row("ours `start` until it exits", s.oursStart));
    lines.push(row("ours start → serve answers Task.Connect", s.oursConnect));
    lines.push(row("  of which after start exited", s.oursServeAfterStart));
    lines.push(row("ours `delete` (no container left)", s.oursDelete));
    lines.push(row("go -v", s.goVersion));
    lines.push(row("go `start` until it exits", s.goStart));
    lines.push(row("go start → serve answers Task.Connect", s.goConnect));
    lines.push(row("go `delete` (no container left)", s.goDelete));
  }
  if (r.timeline) {
    const tl = r.timeline;
    const med = (k) => tl[k]?.median;
    const span = (m, label) =>
      tl[`${m}.ms`]
        ? `  ${label.padEnd(34)} +${med(`${m}.begin`).toFixed(0).padStart(4)} … +${med(`${m}.end`).toFixed(0).padStart(4)} ms  (${ms(med(`${m}.ms`))})`
        : `  ${label.padEnd(34)} n/a (no per-call debug log lines)`;
    lines.push("");
    lines.push(
      `timeline of our \`ctr run --rm … /bin/true\` — containerd at debug level, ${tl.runs} runs, medians in ms from ctr's start:`,
    );
    lines.push(`  ${'serve logs "shim serving"'.padEnd(34)} +${med("serving")?.toFixed(0) ?? "n/a"} ms`);
    lines.push(span("create", "Create (runc create)"));
    lines.push(span("start", "Start (runc start)"));
    lines.push(span("wait", "Wait (until /bin/true exits)"));
    lines.push(span("delete", "Delete (runc delete)"));
    lines.push(span("shutdown", "Shutdown"));
    lines.push(
      `  ${"ctr exits".padEnd(34)} +${med("exit")?.toFixed(0)} ms  (${ms(med("afterShutdown"))} after Shutdown: containerd 1.6 waits for \`shim delete\`)`,
    );
    lines.push(`  (the Go shim's runs in the same containerd: median ${ms(tl.goRun.median)})`);
  }
  if (r.profile) {
    lines.push("", `CPU profiles of our shim (3 by hand + 3 ctr runs, 100 µs sampling) in ${r.profile.dir}:`);
    lines.push(formatSummary(r.profile.profiles));
  }
  return lines.join("\n");
}

async function version(cmd, args, re) {
  const r = await execa(cmd, args, { reject: false });
  return re.exec(String(r.stdout))?.[1] ?? "?";
}

async function main() {
  statSync(SHIM_SRC);
  statSync(ADDON_SRC);
  const st = statSync(SHIM_SRC);
  const env = {
    node: process.version,
    containerd: `containerd ${await version("containerd", ["--version"], /containerd \S+ (\S+)/)}`,
    runc: await version("runc", ["--version"], /runc version (\S+)/),
    cpus: availableParallelism(),
    shim: SHIM_SRC,
    shimBytes: st.size,
    shimBuilt: st.mtime.toISOString(),
    loadBefore: loadavg().map((v) => v.toFixed(2)),
  };
  const result = { env };
  const main = await containerd();
  if (SECTIONS.has("run")) {
    result.run = await benchRun(main);
    failures.push(...result.run.failures);
  }
  if (SECTIONS.has("mem")) result.mem = await benchMem(main);
  if (SECTIONS.has("start")) result.start = await benchStart(main);
  if (SECTIONS.has("timeline")) result.timeline = await benchTimeline();
  if (opt.profile) result.profile = await profile(opt.profile);
  env.loadAfter = loadavg().map((v) => v.toFixed(2));
  return result;
}

let code = 0;
let result;
const failures = [];
try {
  result = await main();
  if (failures.length) {
    code = 1;
    process.stderr.write(`bench-shim: FAILED: ${failures.length} run(s) failed (see above)\n`);
  }
} catch (e) {
  failed = true;
  code = 1;
  process.stderr.write(`bench-shim: FAILED: ${e instanceof Error ? e.message : String(e)}\n`);
}
const cleanupErrors = await runTeardowns();
if (cleanupErrors.length) {
  code = 1;
  process.stderr.write(`bench-shim: cleanup problems: ${cleanupErrors.join("; ")}\n`);
}
if (result) {
  if (opt.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else process.stdout.write(`${report(result)}\n`);
}
process.exit(code);
