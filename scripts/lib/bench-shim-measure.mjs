// Measuring helpers for scripts/bench-shim: order statistics, /proc/PID/smaps_rollup, process
// liveness, and a wall-clock timer around a child process.

import { readFileSync } from "node:fs";

/** Nearest-rank percentile of an ascending array (p in 0..100). */
export function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** median, p90, min, max, mean and n of a list of numbers. */
export function summary(values) {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return {
    n: s.length,
    median: percentile(s, 50),
    p90: percentile(s, 90),
    min: s[0] ?? Number.NaN,
    max: s.at(-1) ?? Number.NaN,
    mean,
  };
}

/**
 * The fields of /proc/PID/smaps_rollup, in KiB (Rss, Pss, Pss_Anon, Pss_File, Shared_Clean,
 * Private_Dirty, ...), plus Uss = Private_Clean + Private_Dirty; undefined if the process is gone.
 */
export function smapsRollup(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  } catch {
    return undefined;
  }
  const out = {};
  for (const line of text.split("\n")) {
    const m = /^(\w+):\s+(\d+) kB$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  out.Uss = (out.Private_Clean ?? 0) + (out.Private_Dirty ?? 0);
  return out;
}

/** Threads of a process (from /proc/PID/status), or undefined. */
export function threadCount(pid) {
  try {
    const m = /^Threads:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The argv of a process, or [] if it is gone. */
export function cmdline(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  } catch {
    return [];
  }
}

/** True while pid exists and is not a zombie. */
export function alive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2));
  } catch {
    return false;
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll until fn() returns something other than undefined, or throw after timeoutMs. */
export async function waitFor(what, fn, timeoutMs = 10000, everyMs = 10) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Milliseconds with one decimal for ms-scale values, formatted for the report. */
export function ms(v) {
  return Number.isFinite(v) ? `${v.toFixed(v < 100 ? 1 : 0)} ms` : "n/a";
}

/** KiB as MB (10^6 bytes would confuse next to smaps' KiB: this is MiB, printed "MB" as ps does). */
export function mb(kib) {
  return Number.isFinite(kib) ? `${(kib / 1024).toFixed(1)} MB` : "n/a";
}

export function ratio(a, b) {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : Number.NaN;
}
