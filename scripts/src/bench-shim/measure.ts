// Measuring helpers for scripts/bench-shim: order statistics, /proc/PID/smaps_rollup, process
// liveness, and the report's number formats.

import { readFileSync } from "node:fs";

export interface Summary {
  n: number;
  median: number;
  p90: number;
  min: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile of an ascending array (p in 0..100); NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] ?? Number.NaN;
}

/** median, p90, min, max, mean and n of a list of numbers. */
export function summary(values: readonly number[]): Summary {
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
 * The fields of /proc/PID/smaps_rollup in KiB (the object carries all of them: Shared_Clean,
 * Swap, ...; these are the ones the bench reads), plus Uss.
 */
export interface SmapsRollup {
  Rss?: number;
  Pss?: number;
  Pss_Anon?: number;
  Pss_File?: number;
  Private_Clean?: number;
  Private_Dirty?: number;
  Uss: number;
}

/**
 * /proc/PID/smaps_rollup, with Uss = Private_Clean + Private_Dirty; undefined if the process is
 * gone.
 */
export function smapsRollup(pid: number): SmapsRollup | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  } catch {
    return undefined;
  }
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const m = /^(\w+):\s+(\d+) kB$/.exec(line);
    if (m?.[1] && m[2]) out[m[1]] = Number(m[2]);
  }
  return { ...out, Uss: (out.Private_Clean ?? 0) + (out.Private_Dirty ?? 0) };
}

/** Threads of a process (from /proc/PID/status), or undefined. */
export function threadCount(pid: number): number | undefined {
  try {
    const m = /^Threads:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The argv of a process, or [] if it is gone. */
export function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  } catch {
    return [];
  }
}

/** True while pid exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(")") + 2));
  } catch {
    return false;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Milliseconds with one decimal for ms-scale values, formatted for the report. */
export function ms(v: number | undefined): string {
  return v !== undefined && Number.isFinite(v) ? `${v.toFixed(v < 100 ? 1 : 0)} ms` : "n/a";
}

/** KiB as MB (10^6 bytes would confuse next to smaps' KiB: this is MiB, printed "MB" as ps does). */
export function mb(kib: number): string {
  return Number.isFinite(kib) ? `${(kib / 1024).toFixed(1)} MB` : "n/a";
}

export function ratio(a: number, b: number): number {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : Number.NaN;
}
