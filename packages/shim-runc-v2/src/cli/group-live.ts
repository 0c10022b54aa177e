// A grouped server's "live" marker, `<socket>.live`: "pid starttime" while the server holds at
// least one container. The launcher's sh part (src/launcher.sh) answers a grouped `start` from it
// without starting Node, after checking that the pid still has that start time (field 22 of
// /proc/PID/stat, so a reused pid never matches). The server removes it before it lingers
// (empty, about to exit) and when it exits, so a `start` that finds it is never handed a server
// that will not take its container.
import { readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";

export class GroupLiveMarker {
  readonly path: string;
  #live = false;

  constructor(socketFile: string) {
    this.path = `${socketFile}.live`;
  }

  /** Writes or removes the marker for `containers` held (only when that changes). */
  sync(containers: number): void {
    const live = containers > 0;
    if (live === this.#live) return;
    if (live) {
      const tmp = `${this.path}.${process.pid}.tmp`;
      try {
        writeFileSync(tmp, `${process.pid} ${ownStartTime()}\n`, { mode: 0o600 });
        renameSync(tmp, this.path);
        this.#live = true;
      } catch {
        // No marker: grouped starts take the Node path, which probes the socket.
      }
    } else this.clear();
  }

  clear(): void {
    this.#live = false;
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }
}

/** Field 22 of /proc/self/stat: this process's start time in clock ticks since boot. */
export function ownStartTime(): string {
  const stat = readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields[19] ?? "";
}
