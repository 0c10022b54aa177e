// The life of one process (a container's init or an exec): its status, its exit once it has
// one, and everyone waiting for that exit. Which status may follow which, and which request a
// status accepts, is process-state-table.ts.
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { type Status, TRANSITIONS } from "./process-state-table.js";

export type { Status } from "./process-state-table.js";

export interface ExitInfo {
  /** Exit code, or 128 + signal number when a signal ended the process (what containerd reports). */
  status: number;
  exitedAt: Date;
}

export class ProcessState {
  #status: Status = "created";
  #exit: ExitInfo | undefined;
  #waiters: Array<(e: ExitInfo) => void> = [];

  get status(): Status {
    return this.#status;
  }

  get exit(): ExitInfo | undefined {
    return this.#exit;
  }

  transition(to: Status): void {
    if (!TRANSITIONS[this.#status].includes(to)) {
      throw new TtrpcError(Code.FailedPrecondition, `process is ${this.#status}, cannot become ${to}`);
    }
    this.#status = to;
  }

  /** Records the exit once; later calls are ignored (a process exits only once). */
  setExited(exit: ExitInfo): boolean {
    if (this.#exit) return false;
    this.#exit = exit;
    if (this.#status !== "deleted") this.#status = "stopped";
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w(exit);
    return true;
  }

  /** Resolves when the process has exited; any number of callers may wait. */
  wait(signal?: AbortSignal): Promise<ExitInfo> {
    if (this.#exit) return Promise.resolve(this.#exit);
    return new Promise((resolve, reject) => {
      const done = (e: ExitInfo) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(e);
      };
      const onAbort = () => {
        this.#waiters = this.#waiters.filter((w) => w !== done);
        // The call's own reason when it has one (a passed deadline is DeadlineExceeded).
        const reason: unknown = signal?.reason;
        reject(reason instanceof TtrpcError ? reason : new TtrpcError(Code.Canceled, "wait canceled"));
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(done);
    });
  }
}
