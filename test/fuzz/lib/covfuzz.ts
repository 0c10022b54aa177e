// A small coverage-guided fuzzer in plain JS, for when no libFuzzer-based one installs
// (jazzer.js 4's prebuilt addon needs glibc 2.38, Debian bookworm has 2.36; 2.x downloads its
// addon or compiler-rt from GitHub). Coverage comes from V8 itself: block-level precise coverage
// through the inspector protocol (Profiler.takePreciseCoverage, which also resets the counters),
// read after every input for the scripts under test. An input that reaches a new block, or a
// block a new number of times (AFL's count buckets), joins the corpus; inputs are corpus entries
// mutated libFuzzer-style (bit flips, interesting integers, insert/erase/duplicate, splices,
// dictionary tokens). Failures are minimized by removing chunks and bytes while they still fail.
import { Session } from "node:inspector";

export interface CovFuzzOptions {
  name: string;
  /** Substrings of script URLs whose coverage guides the search (e.g. "/ttrpc/dist/"). */
  targets: string[];
  seeds: Uint8Array[];
  /** Runs one input; returns the problems found (throwing counts as one). */
  run(input: Uint8Array): Promise<string[]> | string[];
  ms: number;
  maxLen?: number;
  dictionary?: Uint8Array[];
  /** PRNG seed (default: time). */
  seed?: number;
  /** Budget for minimizing a failure. */
  minimizeMs?: number;
}

export interface CovFuzzResult {
  execs: number;
  corpus: Uint8Array[];
  features: number;
  seed: number;
  failure?: { input: Uint8Array; problems: string[] };
}

interface ScriptCoverage {
  url: string;
  functions: { ranges: { startOffset: number; endOffset: number; count: number }[] }[];
}

function bucket(n: number): number {
  if (n <= 3) return n;
  if (n <= 7) return 4;
  if (n <= 15) return 5;
  if (n <= 31) return 6;
  if (n <= 127) return 7;
  return 8;
}

class Coverage {
  private readonly session = new Session();
  private readonly urls = new Map<string, number>();
  targets: string[] = [];

  constructor() {
    this.session.connect();
    this.post("Profiler.enable");
    this.post("Profiler.startPreciseCoverage", { callCount: true, detailed: true });
    this.take();
  }

  private post(method: string, params?: object): unknown {
    let out: unknown;
    let error: unknown;
    // The inspector answers synchronously when the session lives in the same thread.
    this.session.post(method, params, (err, res) => {
      error = err;
      out = res;
    });
    if (error) throw error;
    return out;
  }

  /** Features hit since the last call (the counters are reset by taking them). */
  take(): Set<number> {
    const res = this.post("Profiler.takePreciseCoverage") as { result: ScriptCoverage[] };
    const out = new Set<number>();
    for (const s of res.result) {
      if (!this.targets.some((t) => s.url.includes(t))) continue;
      let si = this.urls.get(s.url);
      if (si === undefined) {
        si = this.urls.size;
        this.urls.set(s.url, si);
      }
      for (const f of s.functions) {
        for (const r of f.ranges) {
          if (r.count === 0) continue;
          // (script, start, end, bucket) → one number; collisions only cost a little guidance.
          out.add(((si * 1_000_003 + r.startOffset) * 65_537 + r.endOffset) * 9 + bucket(r.count));
        }
      }
    }
    return out;
  }
}

// Started when this module loads, before the code under test first runs: V8 gives block-level
// counts only to functions compiled after block coverage was switched on (an already-compiled
// function reports its call count alone). So import this module before anything calls the
// targets.
const coverage = new Coverage();

/** xorshift32: deterministic, seedable. */
function rng(seed: number) {
  let x = seed | 0 || 0x9e3779b9;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  return {
    next,
    below: (n: number) => (n <= 0 ? 0 : next() % n),
    chance: (p: number) => next() / 2 ** 32 < p,
  };
}

const INTERESTING32 = [
  0, 1, 2, 3, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x400000, 0x400001, 0x7fffffff, 0x80000000,
  0xfffffffe, 0xffffffff,
];

export function mutate(
  input: Uint8Array,
  corpus: readonly Uint8Array[],
  dict: readonly Uint8Array[],
  r: ReturnType<typeof rng>,
  maxLen: number,
): Uint8Array {
  let b = Buffer.from(input);
  const rounds = 1 + r.below(4);
  for (let i = 0; i < rounds; i++) {
    const pos = r.below(b.length + 1);
    switch (r.below(11)) {
      case 0: // flip a bit
        if (b.length) b[r.below(b.length)]! ^= 1 << r.below(8);
        break;
      case 1: // random byte
        if (b.length) b[r.below(b.length)] = r.below(256);
        break;
      case 2: {
        // an interesting uint32 (big-endian: frame lengths and ids)
        if (b.length >= 4)
          b.writeUInt32BE(INTERESTING32[r.below(INTERESTING32.length)]!, r.below(b.length - 3));
        break;
      }
      case 3: {
        // insert random bytes
        const n = 1 + r.below(8);
        const ins = Buffer.alloc(n);
        for (let j = 0; j < n; j++) ins[j] = r.below(256);
        b = Buffer.concat([b.subarray(0, pos), ins, b.subarray(pos)]);
        break;
      }
      case 4: {
        // erase a range
        const n = 1 + r.below(Math.max(1, Math.min(16, b.length - pos)));
        b = Buffer.concat([b.subarray(0, pos), b.subarray(pos + n)]);
        break;
      }
      case 5: {
        // duplicate a range
        if (!b.length) break;
        const from = r.below(b.length);
        const n = 1 + r.below(Math.min(32, b.length - from));
        b = Buffer.concat([b.subarray(0, pos), b.subarray(from, from + n), b.subarray(pos)]);
        break;
      }
      case 6:
      case 7: {
        // a dictionary token, inserted or overwriting
        if (!dict.length) break;
        const tok = dict[r.below(dict.length)]!;
        if (r.chance(0.5)) b = Buffer.concat([b.subarray(0, pos), tok, b.subarray(pos)]);
        else {
          const at = r.below(Math.max(1, b.length - tok.length + 1));
          b = Buffer.concat([b.subarray(0, at), tok, b.subarray(at + tok.length)]);
        }
        break;
      }
      case 8: {
        // splice with another corpus entry
        if (!corpus.length) break;
        const o = corpus[r.below(corpus.length)]!;
        const cut = r.below(o.length + 1);
        b = Buffer.concat([b.subarray(0, pos), o.subarray(cut)]);
        break;
      }
      case 9: {
        // add or subtract a little at a byte
        if (b.length) {
          const at = r.below(b.length);
          b[at] = (b[at]! + (r.chance(0.5) ? 1 : 255) * (1 + r.below(4))) & 0xff;
        }
        break;
      }
      case 10: {
        // truncate
        b = b.subarray(0, pos);
        break;
      }
    }
  }
  return b.length > maxLen ? b.subarray(0, maxLen) : b;
}

async function problemsOf(run: CovFuzzOptions["run"], input: Uint8Array): Promise<string[]> {
  try {
    return await run(input);
  } catch (e) {
    return [`threw: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`];
  }
}

/** Removes chunks, then single bytes, while the input still fails. */
export async function minimize(
  input: Uint8Array,
  run: CovFuzzOptions["run"],
  ms: number,
): Promise<{ input: Uint8Array; problems: string[] }> {
  const deadline = Date.now() + ms;
  let best = Buffer.from(input);
  let problems = await problemsOf(run, best);
  for (let chunk = Math.max(1, best.length >> 1); chunk >= 1 && Date.now() < deadline; chunk >>= 1) {
    for (let at = 0; at < best.length && Date.now() < deadline; ) {
      const cand = Buffer.concat([best.subarray(0, at), best.subarray(at + chunk)]);
      const p = await problemsOf(run, cand);
      if (p.length) {
        best = cand;
        problems = p;
      } else at += chunk;
    }
  }
  return { input: best, problems };
}

export async function covfuzz(o: CovFuzzOptions): Promise<CovFuzzResult> {
  const seed = o.seed ?? Date.now() & 0x7fffffff;
  const r = rng(seed);
  const maxLen = o.maxLen ?? 4096;
  const cov = coverage;
  cov.targets = o.targets;
  cov.take();
  const seen = new Set<number>();
  const corpus: Uint8Array[] = [];
  let execs = 0;
  const tryInput = async (input: Uint8Array): Promise<string[] | undefined> => {
    const problems = await problemsOf(o.run, input);
    execs++;
    const feats = cov.take();
    let fresh = false;
    for (const f of feats) {
      if (!seen.has(f)) {
        seen.add(f);
        fresh = true;
      }
    }
    if (fresh) corpus.push(input);
    return problems.length ? problems : undefined;
  };
  const deadline = Date.now() + o.ms;
  let failure: CovFuzzResult["failure"];
  try {
    for (const s of o.seeds) {
      const p = await tryInput(s);
      if (p) {
        failure = { input: s, problems: p };
        break;
      }
    }
    if (!corpus.length) corpus.push(...o.seeds.slice(0, 1));
    while (!failure && Date.now() < deadline) {
      // Favor recent finds: they sit at the frontier of what is covered.
      const pick = r.chance(0.5)
        ? corpus.length - 1 - r.below(Math.min(8, corpus.length))
        : r.below(corpus.length);
      const input = mutate(corpus[pick] ?? new Uint8Array(0), corpus, o.dictionary ?? [], r, maxLen);
      const p = await tryInput(input);
      if (p) failure = { input, problems: p };
    }
  } finally {
    cov.targets = [];
  }
  if (failure) failure = await minimize(failure.input, o.run, o.minimizeMs ?? 10000);
  return { execs, corpus, features: seen.size, seed, ...(failure ? { failure } : {}) };
}
