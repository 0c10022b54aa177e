// An eventfd(2) counter watched on the libuv loop: the cgroup v1 memory controller signals OOMs
// by adding to one (see the shim's ops/oom-v1.ts). The fd is non-blocking, so reads never wait: `take()`
// reads and resets the counter (0 when nothing was signalled), on demand or when the loop says
// the fd is readable.
import { closeSync, readSync } from "node:fs";
import { addon } from "./addon.js";

export class EventCounter {
  readonly fd: number;
  #poll: InstanceType<ReturnType<typeof addon>["FdPoll"]> | undefined;
  #closed = false;
  readonly #buf = Buffer.alloc(8);

  constructor() {
    this.fd = addon().eventfd();
  }

  /** Reads and resets the counter without blocking: 0n when nothing was added since. */
  take(): bigint {
    if (this.#closed) return 0n;
    try {
      const n = readSync(this.fd, this.#buf, 0, 8, null);
      return n === 8 ? this.#buf.readBigUInt64LE(0) : 0n;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EAGAIN") return 0n;
      throw err;
    }
  }

  /**
   * Calls `onSignal(count)` each time something is added to the counter, with what was added
   * (the counter is reset by the read). The poll keeps the process alive until close().
   */
  watch(onSignal: (count: bigint) => void, onError: (err: Error) => void): void {
    if (this.#closed || this.#poll) return;
    this.#poll = new (addon().FdPoll)(this.fd, (error, readable) => {
      if (error) return onError(error);
      if (!readable) return;
      let count: bigint;
      try {
        count = this.take();
      } catch (err) {
        return onError(err as Error);
      }
      if (count > 0n) onSignal(count);
    });
    this.#poll.start(true, false);
  }

  /** Stops watching and closes the fd; later calls do nothing. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // uv_close stops polling at once, so closing the fd right after is safe.
    this.#poll?.close();
    this.#poll = undefined;
    closeSync(this.fd);
  }
}
