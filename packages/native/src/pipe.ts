// An anonymous pipe for a container process's stdin (see io/stdio.ts for why it must be one).
import { addon } from "./addon.js";

/** [read end, write end], both close-on-exec; the caller owns and closes them. */
export function makePipe(): [number, number] {
  return addon().pipe();
}
