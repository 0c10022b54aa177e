// Polling with a deadline, for conditions no event announces (a task's status, a process gone).
// The one polling helper of test/: everything that waits by asking again uses it. (The sweep's
// synchronous waits in cleanup/ cannot: they also run from exit hooks, where no timer fires.)

import { inspect } from "node:util";

export interface WaitOptions {
  /** What is awaited, for the timeout message: "task c1 STOPPED", "the shim to exit". */
  what: string;
  /** Give up after this long. Default 10 000 ms. */
  timeoutMs?: number;
  /** The pause between two calls of `fn`. Default 25 ms. */
  intervalMs?: number;
}

/**
 * Calls `fn` every `intervalMs` until it returns something other than undefined, null or false,
 * and resolves with that value. A throw from `fn` counts as "not yet". After `timeoutMs` rejects
 * with an Error naming `what` and the last value `fn` returned or the last error it threw (also
 * the Error's `cause`).
 */
export async function waitFor<T>(fn: () => T | Promise<T>, opts: WaitOptions): Promise<NonNullable<T>> {
  const { what, timeoutMs = 10_000, intervalMs = 25 } = opts;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let last: { value: unknown } | { error: unknown };
    try {
      const value = await fn();
      if (value !== undefined && value !== null && value !== false) return value as NonNullable<T>;
      last = { value };
    } catch (error) {
      last = { error };
    }
    if (Date.now() > deadline) {
      const got =
        "error" in last ? `last error: ${describe(last.error)}` : `last value: ${describe(last.value)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${got})`, {
        cause: "error" in last ? last.error : undefined,
      });
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

function describe(v: unknown): string {
  const s = v instanceof Error ? v.message : inspect(v, { depth: 2, breakLength: Number.POSITIVE_INFINITY });
  return s.length > 300 ? `${s.slice(0, 300)}…` : s;
}
