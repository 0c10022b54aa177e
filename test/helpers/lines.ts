// Line-by-line reading of a child's output stream, with waits that time out. (execa's
// `iterable()` cannot be left early without waiting for the subprocess to end.)

import { createInterface } from "node:readline";
import type { Readable } from "node:stream";

export class LineReader {
  /** Every line read so far. */
  readonly lines: string[] = [];
  private waiters: Array<() => void> = [];
  private ended = false;

  constructor(stream: Readable) {
    const rl = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
    rl.on("line", (line) => {
      this.lines.push(line);
      this.wake();
    });
    rl.on("close", () => {
      this.ended = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /**
   * The first line (from the start, or from index `from`) that matches; waits for it up to
   * `timeoutMs`. Rejects on timeout or when the stream ends without one.
   */
  async waitFor(
    match: RegExp | string | ((line: string) => boolean),
    timeoutMs = 10000,
    from = 0,
  ): Promise<string> {
    const test =
      typeof match === "function"
        ? match
        : typeof match === "string"
          ? (l: string) => l.includes(match)
          : (l: string) => match.test(l);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.slice(from).find(test);
      if (found !== undefined) return found;
      if (this.ended)
        throw new Error(
          `stream ended without a line matching ${String(match)}; got:\n${this.lines.join("\n")}`,
        );
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(
          `no line matching ${String(match)} within ${timeoutMs} ms; got:\n${this.lines.join("\n")}`,
        );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}
