// Synchronous helpers that never throw: the sweep runs from exit hooks, where nothing
// asynchronous gets to run.

import * as fs from "node:fs";

export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The file's text, or undefined if it cannot be read. */
export function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

/** Whether `p` exists (a dangling symlink counts). */
export function exists(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}
