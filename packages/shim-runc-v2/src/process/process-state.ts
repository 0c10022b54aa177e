// The life of one process (a container's init or an exec), as containerd sees it:
//
//   created ──start──▶ running ──exit──▶ stopped ──delete──▶ deleted
//      │                  ▲ │                                  ▲
//      │                  │ pause/resume (paused)              │
//      └──────exit / delete (never started) ───────────────────┘
//
// A request that does not fit the current state is FailedPrecondition; the caller turns
// "process does not exist" into NotFound before it gets here.
import { Code, TtrpcError } from "@tsrunc/ttrpc";

export type Status = "created" | "running" | "paused" | "stopped" | "deleted";

export interface ExitInfo {
  /** Exit code, or 128 + signal number when a signal ended the process (what containerd reports). */
  status: number;
  exitedAt: Date;
}

const allowed: Record<Status, readonly Status[]> = {
  created: ["running", "stopped", "deleted"],
  running: ["paused", "stopped"],
  paused: ["running", "stopped"],
  stopped: ["deleted"],
  deleted: [],
};

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

  /** Throws FailedPrecondition unless the process is in one of `states`. */
  require(action: string, ...states: Status[]): void {
    if (!states.includes(this.#status)) {
      throw new TtrpcError(Code.FailedPrecondition, `cannot ${action} a ${this.#status} process`);
    }
  }

  transition(to: Status): void {
    if (!allowed[this.#status].includes(to)) {
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
