// scripts/bench-daemon: tsruncd + tsctl against containerd 1.6 + ctr with the Go shim, in one run.
//
//   run        `tsctl run --rm --rootfs DIR id /bin/true` against `ctr run --rm …`, interleaved;
//              then where ours spends its time (timing proxy + tsruncd's debug log).
//   reconnect  N running containers, tsruncd SIGKILLed and started again (3×): spawn → "tsruncd
//              serving", → "boot reconcile done", and → `tsctl tasks ls` listing all N RUNNING.
//   mem        tsruncd's RSS/PSS with 0 and N containers (after creating them, after the
//              reconnects), containerd's with N Go-shim containers, and per-shim PSS.
//
// Usage: scripts/bench-daemon [--runs N] [--warmup N] [--containers N] [--settle-ms N]
//          [--only run,reconnect,mem] [--json]
// Everything runs with a clean environment in private temp roots (tmpfs), swept at the end and on
// Ctrl-C. Exits non-zero only when something fails (a run, the cleanup), not when a goal is missed.

import { statSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type Containerd, startContainerd } from "../../../test/helpers/containerd.js";
import { repo } from "../bench-shim/paths.js";
import {
  BenchHarness,
  benchEnv,
  intOption,
  loadNow,
  printResult,
  sectionsOption,
} from "../lib/bench-harness.js";
import { BenchDaemon } from "./daemon.js";
import { goFleet, oursFleet } from "./fleet.js";
import { containerdMemory, idleMemory, tsruncdMemory } from "./mem.js";
import { benchReconnect } from "./reconnect.js";
import { type BenchResult, GOALS, type MemResult, report } from "./report.js";
import { benchBreakdown, benchRun } from "./run.js";

const { values: opt } = parseArgs({
  options: {
    runs: { type: "string", default: "20" },
    warmup: { type: "string", default: "2" },
    containers: { type: "string", default: "100" },
    repeats: { type: "string", default: "3" },
    "settle-ms": { type: "string", default: "3000" },
    only: { type: "string", default: "run,reconnect,mem" },
    json: { type: "boolean", default: false },
  },
});
const RUNS = intOption(opt, "runs", 1);
const WARMUP = intOption(opt, "warmup", 0);
const CONTAINERS = intOption(opt, "containers", 1);
const REPEATS = intOption(opt, "repeats", 1);
const SETTLE_MS = intOption(opt, "settle-ms", 0);
const SECTIONS = sectionsOption(opt.only, ["run", "reconnect", "mem"]);

// The harness's `t` and the end of the run: tsruncd first (SIGTERM: it leaves the containers to
// the sweep), then containerd, tsruncd's sweep and the teardowns (LIFO).
const h = new BenchHarness<Containerd>("bench-daemon");
const { note, t } = h;

const built = (p: string) => {
  try {
    return statSync(join(repo, p)).mtime.toISOString();
  } catch {
    return "missing";
  }
};

async function bench(result: BenchResult, failures: string[]): Promise<void> {
  note("installing tsrunc into a temp prefix, starting tsruncd");
  const d = await BenchDaemon.create(t);
  h.daemon = d;
  await d.start();
  let cd: Containerd | undefined;
  if (SECTIONS.has("run") || SECTIONS.has("mem")) {
    note("starting a private containerd");
    cd = await startContainerd(t, { logLevel: "info" });
    h.containerds.push(cd);
  }
  const ctrRootfs = cd?.rootfs();

  if (SECTIONS.has("run") && cd && ctrRootfs) {
    const ctx = { d, cd, ctrRootfs, note };
    result.run = await benchRun(ctx, RUNS, WARMUP);
    failures.push(...result.run.failures);
    result.breakdown = await benchBreakdown(ctx, RUNS, WARMUP);
  }

  if (SECTIONS.has("reconnect") || SECTIONS.has("mem")) {
    const mem: MemResult = { settleMs: SETTLE_MS, rows: [], runDetached: {} };
    const withMem = SECTIONS.has("mem");
    if (withMem) {
      note(`tsruncd with no container: settling ${SETTLE_MS} ms`);
      mem.rows.push(...(await idleMemory(d, SETTLE_MS)));
    }
    note(`starting ${CONTAINERS} containers through tsruncd`);
    const fleet = await oursFleet(d, CONTAINERS, note);
    mem.runDetached.ours = fleet.startMs;
    if (withMem) {
      note(`tsruncd with ${CONTAINERS} containers: settling ${SETTLE_MS} ms`);
      mem.rows.push(await tsruncdMemory(d, CONTAINERS, `${CONTAINERS} containers it started`, SETTLE_MS));
    }
    if (SECTIONS.has("reconnect")) {
      result.reconnect = await benchReconnect(d, fleet.ids, REPEATS, note);
      if (withMem) {
        note(`tsruncd after the reconnects: settling ${SETTLE_MS} ms`);
        mem.rows.push(await tsruncdMemory(d, CONTAINERS, `${CONTAINERS} containers, restarted`, SETTLE_MS));
      }
    }
    if (withMem && cd && ctrRootfs) {
      note(`containerd with no container: settling ${SETTLE_MS} ms`);
      mem.rows.push(await containerdMemory(cd, 0, "0 containers", SETTLE_MS));
      note(`starting ${CONTAINERS} containers through containerd (Go shim)`);
      const go = await goFleet(cd, ctrRootfs, CONTAINERS, note);
      mem.runDetached.go = go.startMs;
      note(`containerd with ${CONTAINERS} containers: settling ${SETTLE_MS} ms`);
      mem.rows.push(await containerdMemory(cd, CONTAINERS, `${CONTAINERS} Go-shim containers`, SETTLE_MS));
      result.mem = mem;
    }
  }
}

function judge(r: BenchResult): void {
  if (r.run) {
    const v = r.run.ratio.median;
    r.goals.push({
      goal: `run: tsctl run --rm ≤ ${GOALS.runRatio.toFixed(1)}× ctr run --rm (median)`,
      value: Number.isFinite(v) ? `${v.toFixed(2)}×` : "n/a",
      met: Number.isFinite(v) ? v <= GOALS.runRatio : undefined,
    });
  }
  if (r.reconnect) {
    // Serving and reconciled: a daemon that serves before its reconcile is done (or after) is
    // judged on whichever comes later.
    const v = Math.max(...r.reconnect.samples.map((x) => Math.max(x.servingMs, x.bootDoneMs)));
    r.goals.push({
      goal: `reconnect: → serving + reconciled < ${GOALS.servingMs / 1000} s, ${r.reconnect.containers} ctrs (worst)`,
      value: `${v.toFixed(0)} ms`,
      met: Number.isFinite(v) ? v < GOALS.servingMs : undefined,
    });
  }
  if (r.mem) {
    const rows = r.mem.rows.filter((x) => x.who === "tsruncd" && x.containers > 0);
    const worst = Math.max(...rows.map((x) => x.rssKiB)) / 1024;
    r.goals.push({
      goal: `memory: tsruncd RSS < ${GOALS.tsruncdRssMiB} MB, ${rows[0]?.containers ?? "?"} ctrs (worst)`,
      value: `${worst.toFixed(1)} MB`,
      met: rows.length ? worst < GOALS.tsruncdRssMiB : undefined,
    });
  }
}

const failures: string[] = [];
const result: BenchResult = {
  env: {
    ...(await benchEnv()),
    installedFrom: repo,
    built: {
      shim: built("packages/shim-runc-v2/dist/bin/tsrunc-shim.js"),
      tsruncd: built("packages/daemon/dist/bin/tsruncd.bundle.js"),
      tsctl: built("packages/client/dist/bin/tsctl.bundle.js"),
    },
  },
  goals: [],
};
const { code, completed } = await h.run(
  () => bench(result, failures),
  failures,
  () => {
    result.env.loadAfter = loadNow();
  },
);
judge(result);
if (completed || result.run || result.reconnect || result.mem) printResult(result, opt.json, report);
process.exit(code);
