// Returning freed memory to the kernel once the shim goes idle. An idle shim's private memory is
// what counts when a host runs hundreds of them, and glibc holds on to what start-up freed.
import { addon } from "./addon.js";

let timer: NodeJS.Timeout | undefined;

/** Trims the malloc heap `delayMs` after the last call (a burst of requests trims once). */
export function trimWhenIdle(delayMs = 500, trim: () => unknown = () => addon().mallocTrim()): void {
  if (timer) timer.refresh();
  else {
    timer = setTimeout(() => {
      timer = undefined;
      trim();
    }, delayMs);
    timer.unref();
  }
}
