// Time-boxed fuzz campaigns with fast-check, and the regression corpus.
//
// Budgets: each test file has a default budget (small: the test command runs every fuzz file
// within about a minute in all); scripts/fuzz sets TSR_FUZZ_FILE_MS for long campaigns. A file
// splits its budget among its campaigns by weight. TSR_FUZZ_SEED replays a run.
//
// A failing campaign shrinks its counterexample (with a budget of its own), prints it, and,
// with TSR_FUZZ_SAVE=1 (scripts/fuzz sets it), writes it to test/fuzz/regressions/<target>/,
// where regressions.test.ts replays it on every run of the test command.
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { caseFromJson, caseToJson } from "./frame-arbs.js";
import type { TapTest } from "./tap.js";

/** test/fuzz/regressions, from the compiled test/dist/fuzz/lib or the source test/fuzz/lib. */
export const REGRESSIONS_DIR = (() => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const fromDist = path.resolve(here, "../../../fuzz/regressions");
  return fs.existsSync(path.resolve(here, "../../../fuzz")) ? fromDist : path.resolve(here, "../regressions");
})();

export const LONG = Boolean(process.env.TSR_FUZZ_FILE_MS);

/** This file's budget in ms: TSR_FUZZ_FILE_MS when set, else the default. */
export function fileBudgetMs(defaultMs: number): number {
  const env = Number(process.env.TSR_FUZZ_FILE_MS);
  return Number.isFinite(env) && env > 0 ? env : defaultMs;
}

export function seedFromEnv(): number | undefined {
  const s = Number(process.env.TSR_FUZZ_SEED);
  return Number.isInteger(s) ? s : undefined;
}

/** Inputs run per campaign in this process (printed at the end of each file). */
export const executed: Record<string, number> = {};

type TestLike = Pick<TapTest, "comment" | "fail" | "pass">;

export interface CampaignOptions<T> {
  /** Campaign name: also the regression directory (test/fuzz/regressions/<target>/). */
  target: string;
  arb: fc.Arbitrary<T>;
  /** Runs one input; returns the problems found (empty: fine). Throwing counts as a problem. */
  run: (input: T) => Promise<string[]> | string[];
  ms: number;
  /** Upper bound on inputs (default: unbounded in long mode, 100000 otherwise). */
  maxRuns?: number;
  /** Budget for shrinking a failure (default: min(30 s, max(5 s, ms))). */
  shrinkMs?: number;
  /** The input as saved in a regression file (default: caseToJson). */
  toJson?: (input: T) => unknown;
  /** Runs after each input, e.g. to check the server is still alive; a string is a failure. */
  after?: () => Promise<string | undefined> | string | undefined;
}

/**
 * Runs inputs until the budget is spent or one fails; on failure, shrinks, reports and (with
 * TSR_FUZZ_SAVE=1) saves the minimized input. Returns the number of inputs run.
 */
export async function campaign<T>(t: TestLike, o: CampaignOptions<T>): Promise<number> {
  const started = Date.now();
  const prop = fc.asyncProperty(o.arb, async (input) => {
    const problems = await o.run(input);
    const after = o.after ? await o.after() : undefined;
    if (after) problems.push(after);
    if (problems.length) throw new Error(problems.join("\n"));
  });
  // Batches of runs until the budget is spent: fast-check's own time limits either abandon the
  // input in flight (interrupt), which would leave its work running into the checks that follow,
  // or keep generating values for the runs they skip. Batch k runs with seed base+k.
  const base = seedFromEnv() ?? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
  const maxRuns = o.maxRuns ?? (LONG ? 1e9 : 100000);
  const shrinkMs = o.shrinkMs ?? Math.min(30000, Math.max(5000, o.ms));
  let runs = 0;
  let size = 8;
  let failed: fc.RunDetails<[T]> | undefined;
  for (let k = 0; runs < maxRuns && Date.now() - started < o.ms; k++) {
    const t0 = Date.now();
    const res = await fc.check(prop, {
      numRuns: Math.min(size, maxRuns - runs),
      seed: base + k,
      // Only shrinking can run long here: give it its own budget.
      interruptAfterTimeLimit: Math.max(1000, o.ms - (t0 - started)) + shrinkMs,
      markInterruptAsFailure: false,
    });
    runs += res.numRuns + (res.failed ? res.numShrinks : 0);
    if (res.failed) {
      failed = res;
      break;
    }
    if (Date.now() - t0 < 250) size = Math.min(size * 2, 512);
  }
  if (!failed) {
    executed[o.target] = (executed[o.target] ?? 0) + runs;
    t.comment(`${o.target}: ${runs} inputs in ${Date.now() - started} ms (seed ${base})`);
    t.pass(`${o.target}: no failure in ${runs} inputs`);
    return runs;
  }
  executed[o.target] = (executed[o.target] ?? 0) + runs;
  const res = failed;
  const ce = res.counterexample as [T];
  const err = res.errorInstance;
  const input = o.toJson ? o.toJson(ce[0]) : caseToJson(ce[0]);
  const saved = process.env.TSR_FUZZ_SAVE === "1" ? saveRegression(o.target, input, String(err)) : undefined;
  t.fail(
    `${o.target}: failure after ${runs} inputs (seed ${base}, batch seed ${res.seed}, ${res.numShrinks} shrinks)`,
    {
      error: String(err instanceof Error ? err.message : err),
      input: JSON.stringify(input).slice(0, 4000),
      ...(saved ? { saved } : {}),
    },
  );
  return runs;
}

export interface Regression {
  target: string;
  /** What went wrong when it was found, and what fixed it. */
  note: string;
  input: unknown;
}

export function saveRegression(target: string, input: unknown, note: string): string {
  const dir = path.join(REGRESSIONS_DIR, target);
  fs.mkdirSync(dir, { recursive: true });
  const text = JSON.stringify(input);
  const name = `${createHash("sha256").update(text).digest("hex").slice(0, 12)}.json`;
  const file = path.join(dir, name);
  fs.writeFileSync(file, `${JSON.stringify({ target, note: note.slice(0, 2000), input }, null, 2)}\n`);
  return file;
}

/** Every saved input of `target`, decoded (base64 byte strings back to Uint8Array). */
export function loadRegressions<T>(target: string): { file: string; note: string; input: T }[] {
  const dir = path.join(REGRESSIONS_DIR, target);
  let names: string[] = [];
  try {
    names = fs
      .readdirSync(dir)
      .filter((n) => n.endsWith(".json"))
      .sort();
  } catch {
    return [];
  }
  return names.map((n) => {
    const r = JSON.parse(fs.readFileSync(path.join(dir, n), "utf8")) as Regression;
    return { file: path.join(dir, n), note: r.note, input: caseFromJson<T>(r.input) };
  });
}
