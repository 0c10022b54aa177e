// scripts/bench-images: images through tsruncd + tsctl against containerd 1.6 + ctr, in one run.
//
//   pull  `tsctl images pull --plain-http REF` (pull + unpack into overlay snapshots) on a fresh
//         tsruncd root each time, against `ctr images pull --plain-http REF` (1.6 unpacks by
//         default) on a fresh private containerd each time; interleaved, which goes first
//         alternating. Daemon start-up is not timed; only the command.
//   run   `tsctl run --rm REF id /bin/true` against `ctr run --rm REF id /bin/true` with the Go
//         shim, interleaved, on the roots the last pulls left; `tsctl run --rm --rootfs` in the
//         same rotation (the run without an image), and the image's calls one by one through
//         @tsrunc/client (Images.Get, ImageTools.Config, Snapshots.Prepare/Mounts/Remove).
//
// The image: umoci from busybox-static plus --layers layers of random files (--size-mb in all),
// pushed by skopeo to a docker-registry on loopback. Every process runs with a clean environment;
// everything lives in swept temp roots (tmpfs), removed at the end and on Ctrl-C. Exits non-zero
// only when something fails, not when a goal is missed.
//
// Usage: scripts/bench-images [--pulls N] [--runs N] [--warmup N] [--layers N] [--size-mb N]
//          [--only pull,run] [--json]

import { rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { connect } from "@tsrunc/client";
import { type Containerd, startContainerd } from "../../../test/helpers/containerd.js";
import { tempRoot } from "../../../test/helpers/temp-root.js";
import { BenchDaemon } from "../bench-daemon/daemon.js";
import { GO_RT } from "../bench-daemon/report.js";
import { ms, ratio, type Summary, summary } from "../bench-shim/measure.js";
import {
  BenchHarness,
  benchEnv,
  intOption,
  loadNow,
  message,
  printResult,
  sectionsOption,
} from "../lib/bench-harness.js";
import { type BenchImage, buildAndServe } from "./image.js";

const { values: opt } = parseArgs({
  options: {
    pulls: { type: "string", default: "5" },
    runs: { type: "string", default: "20" },
    warmup: { type: "string", default: "2" },
    layers: { type: "string", default: "5" },
    "size-mb": { type: "string", default: "200" },
    only: { type: "string", default: "pull,run" },
    json: { type: "boolean", default: false },
  },
});
const PULLS = intOption(opt, "pulls", 1);
const RUNS = intOption(opt, "runs", 1);
const WARMUP = intOption(opt, "warmup", 0);
const LAYERS = intOption(opt, "layers", 1);
const SIZE_MB = intOption(opt, "size-mb", 1);
const SECTIONS = sectionsOption(opt.only, ["pull", "run"]);
const GOAL_RATIO = 1.0;

// The harness's `t` and the end of the run: tsruncd, the containerds, then the teardowns (LIFO).
const h = new BenchHarness<Containerd>("bench-images");
const { note, t, containerds } = h;

interface Pair {
  ours: Summary & { samples: number[] };
  theirs: Summary & { samples: number[] };
  ratio: { median: number; p90: number };
}

interface Result {
  env: Record<string, unknown>;
  image?: { ref: string; layers: number; bytes: number; buildMs: number };
  pull?: Pair;
  run?: Pair & { warmup: number; rootfs: Summary; steps: Record<string, Summary> };
  failures: string[];
  goals: { goal: string; value: string; met: boolean | undefined }[];
}

const pair = (a: number[], b: number[]): Pair => {
  const sa = summary(a);
  const sb = summary(b);
  return {
    ours: { ...sa, samples: a },
    theirs: { ...sb, samples: b },
    ratio: { median: ratio(sa.median, sb.median), p90: ratio(sa.p90, sb.p90) },
  };
};

/** A fresh tsruncd root: stop, remove its root (content, snapshots, database), start. */
async function freshDaemon(d: BenchDaemon): Promise<void> {
  await d.stop();
  rmSync(join(d.root.path, "root"), { recursive: true, force: true });
  await d.start();
}

async function freshContainerd(): Promise<Containerd> {
  for (const old of containerds.splice(0)) {
    const errs = await old.stop();
    if (errs.length) throw new Error(`stopping containerd: ${errs.join("; ")}`);
  }
  const cd = await startContainerd(t, { logLevel: "info", sizeMiB: 2048 });
  containerds.push(cd);
  return cd;
}

async function timed(what: string, f: () => Promise<{ exitCode: number; stderr: string }>): Promise<number> {
  const t0 = performance.now();
  const r = await f();
  const dt = performance.now() - t0;
  if (r.exitCode !== 0) throw new Error(`${what}: exit ${r.exitCode}: ${r.stderr.trim()}`);
  return dt;
}

async function benchPull(d: BenchDaemon, image: BenchImage, failures: string[]): Promise<Pair> {
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let i = 0; i < PULLS; i++) {
    note(`pull ${i + 1}/${PULLS}`);
    const a = async () => {
      await freshDaemon(d);
      ours.push(
        await timed("tsctl images pull", () =>
          d.tsctl(["images", "pull", "--plain-http", "-q", image.ref], { timeoutMs: 600_000 }),
        ),
      );
    };
    const b = async () => {
      const cd = await freshContainerd();
      theirs.push(
        await timed("ctr images pull", () =>
          cd.ctr(["images", "pull", "--plain-http", image.ref], { timeout: 600_000 }),
        ),
      );
    };
    try {
      if (i % 2 === 0) {
        await a();
        await b();
      } else {
        await b();
        await a();
      }
    } catch (e) {
      failures.push(message(e));
      note(`FAILED: ${message(e)}`);
    }
  }
  return pair(ours, theirs);
}

async function benchRun(
  d: BenchDaemon,
  image: BenchImage,
  failures: string[],
): Promise<Pair & { rootfs: Summary; steps: Record<string, Summary> }> {
  let cd = containerds[0];
  if (cd === undefined) {
    cd = await freshContainerd();
    await timed("ctr images pull", () =>
      cd!.ctr(["images", "pull", "--plain-http", image.ref], { timeout: 600_000 }),
    );
  }
  const c = cd;
  const ours = (id: string) =>
    timed("tsctl run", () => d.tsctl(["run", "--rm", image.ref, id, "/bin/true"], { timeoutMs: 60_000 }));
  const theirs = (id: string) =>
    timed("ctr run", () =>
      c.ctr(["run", "--rm", "--runtime", GO_RT, image.ref, id, "/bin/true"], { timeout: 60_000 }),
    );
  for (let i = 0; i < WARMUP; i++) {
    await ours(`w-ts-${i}`);
    await theirs(`w-go-${i}`);
  }
  const oursRootfs = (id: string) =>
    timed("tsctl run --rootfs", () =>
      d.tsctl(["run", "--rm", "--rootfs", d.rootfs, id, "/bin/true"], { timeoutMs: 60_000 }),
    );
  const a: number[] = [];
  const b: number[] = [];
  const r: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    if (i % 5 === 0) note(`run ${i + 1}/${RUNS}`);
    const x = () => ours(`r-ts-${i}`).then((v) => a.push(v));
    const y = () => theirs(`r-go-${i}`).then((v) => b.push(v));
    const z = () => oursRootfs(`r-rf-${i}`).then((v) => r.push(v));
    const order = [x, y, z];
    try {
      for (let k = 0; k < 3; k++) await order[(i + k) % 3]!();
    } catch (e) {
      failures.push(message(e));
      note(`FAILED: ${message(e)}`);
    }
  }
  return { ...pair(a, b), rootfs: summary(r), steps: await imageSteps(d, image) };
}

/**
 * What the image adds to a run, call by call through the library (one connection, as tsctl
 * makes): Images.Get, ImageTools.Config, Snapshots.Prepare, Snapshots.Mounts, Snapshots.Remove.
 */
async function imageSteps(d: BenchDaemon, image: BenchImage): Promise<Record<string, Summary>> {
  const client = await connect({ address: d.address, namespace: d.namespace });
  const steps: Record<string, number[]> = { get: [], config: [], prepare: [], mounts: [], remove: [] };
  const time = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const v = await f();
    steps[name]!.push(performance.now() - t0);
    return v;
  };
  try {
    for (let i = 0; i < Math.max(RUNS, 5); i++) {
      await time("get", () => client.images.get(image.ref));
      const cfg = await time("config", () => client.images.config({ name: image.ref }));
      await time("prepare", () => client.snapshots.prepare({ key: `steps-${i}`, parent: cfg.chainId }));
      await time("mounts", () => client.snapshots.mounts(`steps-${i}`));
      await time("remove", () => client.snapshots.remove(`steps-${i}`));
    }
  } finally {
    await client.close();
  }
  return Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, summary(v)]));
}

function judge(r: Result): void {
  const add = (goal: string, v: number | undefined) =>
    r.goals.push({
      goal,
      value: v !== undefined && Number.isFinite(v) ? `${v.toFixed(2)}×` : "n/a",
      met: v !== undefined && Number.isFinite(v) ? v <= GOAL_RATIO : undefined,
    });
  if (r.pull) add(`pull+unpack: tsctl ≤ ${GOAL_RATIO.toFixed(1)}× ctr (median)`, r.pull.ratio.median);
  if (r.run)
    add(`run --rm IMAGE /bin/true: tsctl ≤ ${GOAL_RATIO.toFixed(1)}× ctr (median)`, r.run.ratio.median);
}

function report(r: Result): string {
  const lines = [
    "bench-images: tsruncd + tsctl vs containerd 1.6 + ctr (Go shim)",
    `  node ${r.env.node}, ${r.env.containerd}, runc ${r.env.runc}, ${r.env.cpus} cpus, load ${String(r.env.loadBefore)} → ${String(r.env.loadAfter)}`,
  ];
  if (r.image)
    lines.push(
      `  image ${r.image.ref}: ${r.image.layers} layers, ${(r.image.bytes / 1048576).toFixed(0)} MB of random files (built in ${ms(r.image.buildMs)})`,
    );
  const row = (name: string, p: Pair) => [
    "",
    `${name}                 n   median      p90      min      max`,
    `  tsrunc             ${String(p.ours.n).padStart(3)} ${ms(p.ours.median).padStart(8)} ${ms(p.ours.p90).padStart(8)} ${ms(p.ours.min).padStart(8)} ${ms(p.ours.max).padStart(8)}`,
    `  containerd         ${String(p.theirs.n).padStart(3)} ${ms(p.theirs.median).padStart(8)} ${ms(p.theirs.p90).padStart(8)} ${ms(p.theirs.min).padStart(8)} ${ms(p.theirs.max).padStart(8)}`,
    `  ratio (ours/theirs)    ${p.ratio.median.toFixed(2)}×   ${p.ratio.p90.toFixed(2)}×`,
  ];
  if (r.pull) lines.push(...row("pull+unpack", r.pull));
  if (r.run) {
    lines.push(...row("run --rm   ", r.run));
    const rf = r.run.rootfs;
    lines.push(
      `  tsrunc --rootfs    ${String(rf.n).padStart(3)} ${ms(rf.median).padStart(8)} ${ms(rf.p90).padStart(8)} ${ms(rf.min).padStart(8)} ${ms(rf.max).padStart(8)}   (the same run without an image)`,
      "",
      "what an image adds, per call through @tsrunc/client (median / p90):",
      `  ${Object.entries(r.run.steps)
        .map(([k, v]) => `${k} ${ms(v.median)} / ${ms(v.p90)}`)
        .join(", ")}`,
    );
  }
  lines.push("", "goals:");
  for (const g of r.goals)
    lines.push(`  ${g.met === undefined ? "n/a   " : g.met ? "MET   " : "MISSED"} ${g.goal}: ${g.value}`);
  if (r.failures.length) lines.push("", `failures: ${r.failures.length}`, ...r.failures.map((f) => `  ${f}`));
  return lines.join("\n");
}

const result: Result = { env: await benchEnv(), failures: [], goals: [] };
const { code } = await h.run(
  async () => {
    note("installing tsrunc into a temp prefix");
    const d = await BenchDaemon.create(t);
    h.daemon = d;
    const work = tempRoot(t, { sizeMiB: 2048 });
    t.teardown(() => work.cleanup());
    note(`building a ${SIZE_MB} MB image in ${LAYERS}+1 layers with umoci`);
    const t0 = performance.now();
    const image = await buildAndServe(t, work.path, { layers: LAYERS, totalMb: SIZE_MB, note });
    result.image = { ...image, buildMs: performance.now() - t0 };
    await d.start();
    if (SECTIONS.has("pull")) result.pull = await benchPull(d, image, result.failures);
    if (SECTIONS.has("run")) {
      if (!SECTIONS.has("pull"))
        await d.tsctlOk(["images", "pull", "--plain-http", "-q", image.ref], { timeoutMs: 600_000 });
      result.run = { ...(await benchRun(d, image, result.failures)), warmup: WARMUP };
    }
  },
  result.failures,
  () => {
    result.env.loadAfter = loadNow();
  },
);
judge(result);
printResult(result, opt.json, report);
process.exit(code);
