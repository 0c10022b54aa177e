// bench-shim's `standalone` section: the single-file shim (packages/shim-runc-v2/dist/sea, Node
// inside) against the launcher (dist/bin: sh + node on PATH + bundle + code cache + addon), both
// under one private containerd 1.6 (a clean environment: env -i through the harness), the
// launcher as io.containerd.tsrunc.v2 and the single file as io.containerd.tsrunc-sea.v2:
//   run   `ctr run --rm … /bin/true`, interleaved launcher / single file;
//   mem   PSS (and its file-backed and anonymous parts), RSS, USS per idle shim with N sleeping
//         containers of each, after a settle time: the single file's ~99 MB are file-backed pages
//         shared by every shim mapping them, so PSS should not grow with the file's size;
//   size  bytes on disk of what each layout installs (and the node it needs for the launcher).
// The single file's addon cache lives in a root-owned directory of the run (TSRUNC_ADDON_CACHE
// under /run), removed at the end.
import { randomBytes } from "node:crypto";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { findScopeProcesses } from "../../../test/helpers/cleanup.js";
import { argValue, type Containerd, startContainerd } from "../../../test/helpers/containerd.js";
import { waitFor } from "../../../test/helpers/wait.js";
import type { BenchHarness } from "../lib/bench-harness.js";
import { mb, ms, ratio, type Summary, sleep, smapsRollup, summary } from "./measure.js";
import { TS_NAME } from "./paths.js";
import { TS_RT } from "./report.js";
import { type RoundTimes, shimRound } from "./shim-round.js";

export const SEA_RT = "io.containerd.tsrunc-sea.v2";
const SEA_NAME = "containerd-shim-tsrunc-sea-v2";
const LAUNCHER_FILES = [TS_NAME, "tsrunc-shim.js", "tsrunc-shim.cache", "tsrunc_native.node"];

export interface LayoutMem {
  n: number;
  pssKiB: Summary;
  pssFileKiB: Summary;
  pssAnonKiB: Summary;
  rssKiB: Summary;
  ussKiB: Summary;
}

export interface VerbTimes {
  /** `start` until it printed the address and exited. */
  startMs: Summary;
  /** `start` until the server answered Task.Connect. */
  connectMs: Summary;
  /** The post-exit `delete` containerd 1.6 runs after every clean Task.Delete. */
  deleteCleanMs: Summary;
}

export interface StandaloneResult {
  launcherVerbs: VerbTimes;
  seaVerbs: VerbTimes;
  runs: number;
  launcherRun: Summary & { samples: number[] };
  seaRun: Summary & { samples: number[] };
  runRatio: { median: number; p90: number };
  idle: number;
  launcherMem?: LayoutMem;
  seaMem?: LayoutMem;
  pssRatio?: number;
  launcherBytes: number;
  seaBytes: number;
  nodeBytes: number;
  failures: string[];
}

export interface StandaloneOptions {
  launcherDir: string;
  seaFile: string;
  runs: number;
  warmup: number;
  idle: number;
  settleMs: number;
  env: Record<string, string>;
}

export async function benchStandalone(
  h: BenchHarness<Containerd>,
  o: StandaloneOptions,
): Promise<StandaloneResult> {
  const { note, t } = h;
  const cache = `/run/tsr-bench-addons-${randomBytes(4).toString("hex")}`;
  t.teardown(() => rmSync(cache, { recursive: true, force: true }));
  const cd = await startContainerd(t, { logLevel: "info", env: { ...o.env, TSRUNC_ADDON_CACHE: cache } });
  h.containerds.push(cd);
  const bin = join(cd.root, "opt/bin");
  mkdirSync(bin, { recursive: true });
  // Copies, as scripts/install makes (a rebuild mid-run changes nothing here), on disk as
  // installed files are: the harness's temp root is a tmpfs, whose pages count as shared memory
  // (Pss_Shmem), not as the file-backed pages of /usr/bin/node the launcher maps. containerd
  // finds them through symlinks in its opt/bin.
  const disk = mkdtempSync("/var/tmp/tsr-bench-sea-");
  t.teardown(() => rmSync(disk, { recursive: true, force: true }));
  for (const f of LAUNCHER_FILES) copyFileSync(join(o.launcherDir, f), join(disk, f));
  copyFileSync(o.seaFile, join(disk, SEA_NAME));
  chmodSync(join(disk, TS_NAME), 0o755);
  chmodSync(join(disk, SEA_NAME), 0o755);
  for (const f of [TS_NAME, SEA_NAME]) symlinkSync(join(disk, f), join(bin, f));
  const rootfs = cd.rootfs();
  const failures: string[] = [];

  const ctrRun = async (args: string[]): Promise<number | undefined> => {
    const t0 = performance.now();
    const r = await cd.ctr(args, { timeout: 30000 });
    const dt = performance.now() - t0;
    if (r.exitCode !== 0) {
      failures.push(`${r.command}: exit ${r.exitCode}: ${r.stderr.trim()}`);
      note(`FAILED: ${r.command}: ${r.stderr.trim()}`);
      return undefined;
    }
    return dt;
  };
  const run = (rt: string, id: string) =>
    ctrRun(["run", "--rm", "--runtime", rt, "--rootfs", rootfs, id, "/bin/true"]);

  // 1. ctr run --rm, interleaved (the first single-file run also fills the addon cache: warm-up).
  for (let i = 0; i < o.warmup; i++) {
    await run(TS_RT, `sw-l-${i}`);
    await run(SEA_RT, `sw-s-${i}`);
  }
  const launcher: number[] = [];
  const sea: number[] = [];
  for (let i = 0; i < o.runs; i++) {
    note(`standalone: ctr run ${i + 1}/${o.runs}`);
    // Alternate which goes first, so neither always follows the other.
    const order: Array<[number[], string, string]> = [
      [launcher, TS_RT, `sr-l-${i}`],
      [sea, SEA_RT, `sr-s-${i}`],
    ];
    if (i % 2) order.reverse();
    for (const [list, rt, id] of order) {
      const dt = await run(rt, id);
      if (dt !== undefined) list.push(dt);
    }
  }
  const lS = summary(launcher);
  const sS = summary(sea);

  // Where a run's time goes: each layout's verbs driven by hand as containerd drives them.
  const rounds: Record<"l" | "s", RoundTimes[]> = { l: [], s: [] };
  for (let i = 0; i < o.runs; i++) {
    note(`standalone: verbs ${i + 1}/${o.runs}`);
    for (const [k, f] of [
      ["l", TS_NAME],
      ["s", SEA_NAME],
    ] as const) {
      try {
        rounds[k].push(await shimRound(cd, join(bin, f), `sv-${k}-${i}`, { TSRUNC_ADDON_CACHE: cache }));
      } catch (e) {
        failures.push(`standalone verbs ${f}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  }
  const verbs = (rows: RoundTimes[]): VerbTimes => ({
    startMs: summary(rows.map((r) => r.startMs)),
    connectMs: summary(rows.map((r) => r.connectMs)),
    deleteCleanMs: summary(rows.map((r) => r.deleteCleanMs)),
  });

  // 2. idle memory: o.idle containers of each, created interleaved.
  const shims = () =>
    findScopeProcesses(cd.scope, false).filter((p) => p.argv.some((a) => a.includes("containerd-shim-")));
  const pidOf = (id: string) =>
    shims().find((p) => argValue(p.argv, "id") === id && !["start", "delete"].includes(p.argv.at(-1) ?? ""))
      ?.pid;
  const ids: Record<"l" | "s", string[]> = { l: [], s: [] };
  let launcherMem: LayoutMem | undefined;
  let seaMem: LayoutMem | undefined;
  try {
    for (let i = 0; i < o.idle; i++) {
      note(`standalone: idle container ${i + 1}/${o.idle}`);
      for (const [k, rt] of [
        ["l", TS_RT],
        ["s", SEA_RT],
      ] as const) {
        const id = `si-${k}-${i}`;
        if (
          (await ctrRun(["run", "-d", "--runtime", rt, "--rootfs", rootfs, id, "/bin/sleep", "1000"])) !==
          undefined
        )
          ids[k].push(id);
      }
    }
    await sleep(o.settleMs);
    const mem = (list: string[]): LayoutMem => {
      const rows = list.flatMap((id) => {
        const pid = pidOf(id);
        const s = pid === undefined ? undefined : smapsRollup(pid);
        return s ? [s] : [];
      });
      const pick = (f: (r: (typeof rows)[number]) => number | undefined) =>
        summary(rows.map((r) => f(r) ?? 0));
      return {
        n: rows.length,
        pssKiB: pick((r) => r.Pss),
        pssFileKiB: pick((r) => r.Pss_File),
        pssAnonKiB: pick((r) => r.Pss_Anon),
        rssKiB: pick((r) => r.Rss),
        ussKiB: pick((r) => r.Uss),
      };
    };
    launcherMem = mem(ids.l);
    seaMem = mem(ids.s);
  } finally {
    const all = [...ids.l, ...ids.s];
    const worker = async () => {
      for (let id = all.shift(); id !== undefined; id = all.shift()) {
        await cd.ctr(["task", "rm", "-f", id], { timeout: 20000 });
        await cd.ctr(["containers", "rm", id], { timeout: 20000 });
      }
    };
    await Promise.all([worker(), worker(), worker()]);
    await waitFor(() => shims().length === 0, { what: "shims to exit", timeoutMs: 10000 }).catch(() =>
      failures.push(`standalone: ${shims().length} shim(s) left running`),
    );
  }

  const size = (f: string) => statSync(f).size;
  return {
    runs: o.runs,
    launcherVerbs: verbs(rounds.l),
    seaVerbs: verbs(rounds.s),
    launcherRun: { ...lS, samples: launcher },
    seaRun: { ...sS, samples: sea },
    runRatio: { median: ratio(sS.median, lS.median), p90: ratio(sS.p90, lS.p90) },
    idle: o.idle,
    ...(launcherMem ? { launcherMem } : {}),
    ...(seaMem ? { seaMem } : {}),
    ...(launcherMem && seaMem ? { pssRatio: ratio(seaMem.pssKiB.median, launcherMem.pssKiB.median) } : {}),
    launcherBytes: LAUNCHER_FILES.reduce((a, f) => a + size(join(o.launcherDir, f)), 0),
    seaBytes: size(o.seaFile),
    nodeBytes: size(process.execPath),
    failures,
  };
}

export function standaloneLines(r: StandaloneResult): string[] {
  const kib = (v: number) => mb(v);
  const row = (name: string, run: Summary, m: LayoutMem | undefined, bytes: string) =>
    `  ${name.padEnd(12)} ${ms(run.median).padStart(8)} ${ms(run.p90).padStart(8)}   ${
      m
        ? `${kib(m.pssKiB.median).padStart(8)} ${kib(m.pssFileKiB.median).padStart(8)} ${kib(m.pssAnonKiB.median).padStart(8)} ${kib(m.rssKiB.median).padStart(8)} ${kib(m.ussKiB.median).padStart(8)}`
        : "(no memory numbers)"
    }   ${bytes}`;
  const MB = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
  return [
    "",
    `standalone (single file) vs launcher, one containerd, ${r.runs} interleaved ctr run --rm each, idle memory per shim at ${r.idle} containers each:`,
    "  layout       run med  run p90        PSS PSS_file PSS_anon      RSS      USS   on disk",
    row(
      "launcher",
      r.launcherRun,
      r.launcherMem,
      `${MB(r.launcherBytes)} + node ${MB(r.nodeBytes)} on the host`,
    ),
    row("single file", r.seaRun, r.seaMem, `${MB(r.seaBytes)} (Node inside)`),
    "  by hand, median (start / start until Task.Connect answers / post-exit delete):",
    `    launcher     ${ms(r.launcherVerbs.startMs.median)} / ${ms(r.launcherVerbs.connectMs.median)} / ${ms(r.launcherVerbs.deleteCleanMs.median)}`,
    `    single file  ${ms(r.seaVerbs.startMs.median)} / ${ms(r.seaVerbs.connectMs.median)} / ${ms(r.seaVerbs.deleteCleanMs.median)}`,
    `  single file / launcher: run median ${r.runRatio.median.toFixed(2)}x, p90 ${r.runRatio.p90.toFixed(2)}x${
      r.pssRatio === undefined ? "" : `, PSS ${r.pssRatio.toFixed(2)}x`
    }`,
  ];
}
