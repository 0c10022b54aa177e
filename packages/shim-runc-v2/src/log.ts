// The shim's logger: pino JSON lines into the bundle's `log` fifo, which containerd reads and
// copies into its own log. The fifo is opened O_RDWR|O_NONBLOCK so that opening never blocks
// (containerd may not have its reader open yet, or may be restarting); while nobody reads,
// lines wait in the fifo's buffer. Without the fifo (a shim started by hand) logs are dropped.
import { constants, lstatSync, openSync } from "node:fs";
import { join } from "node:path";
import { BundleFile } from "@tsrunc/shim-contract/bundle-files";
import pino, { type Logger } from "pino";

export function openShimLog(bundle: string, fields: Record<string, string>, debug: boolean): Logger {
  const level = debug ? "debug" : "info";
  let fd: number | undefined;
  try {
    const path = join(bundle, BundleFile.log);
    if (lstatSync(path).isFIFO())
      fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch {
    fd = undefined;
  }
  if (fd === undefined) return pino({ level, enabled: false });
  const dest = pino.destination({ fd, sync: false, minLength: 0 });
  return pino(
    { level, base: { pid: process.pid, ...fields }, timestamp: pino.stdTimeFunctions.isoTime },
    dest,
  );
}
