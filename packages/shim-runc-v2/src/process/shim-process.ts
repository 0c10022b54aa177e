// What init and exec processes share: identity, pid, the state machine, stdio, the process's
// lock, and the bookkeeping that keeps events in order. An exit that the reaper reports while
// Start is still in flight is held until Start has replied, so containerd never sees /tasks/exit
// before the start it belongs to.

import type { StdioHandle, StdioPaths } from "../io/stdio-handle.js";
import type { ShimContext } from "../shim-context.js";
import { Mutex } from "./mutex.js";
import { type ExitInfo, ProcessState } from "./process-state.js";
import { checkOperation, type Operation, type ProcessKind } from "./process-state-table.js";

export abstract class ShimProcess {
  readonly containerId: string;
  /** "" for a container's init process. */
  readonly execId: string;
  readonly stdio: StdioPaths;
  readonly state = new ProcessState();
  pid = 0;
  protected io: StdioHandle | undefined;
  protected readonly ctx: ShimContext;
  readonly #lock = new Mutex();
  #startDone: Promise<void> = Promise.resolve();

  constructor(ctx: ShimContext, containerId: string, execId: string, stdio: StdioPaths) {
    this.ctx = ctx;
    this.containerId = containerId;
    this.execId = execId;
    this.stdio = stdio;
  }

  abstract readonly kind: ProcessKind;

  /** The id containerd uses for this process in events: the exec id, or the container id. */
  get eventId(): string {
    return this.execId || this.containerId;
  }

  /** Throws FailedPrecondition or NotFound unless `op` fits the current state (process-state-table.ts). */
  check(op: Operation): void {
    checkOperation(this.kind, op, this.state.status);
  }

  /** Runs `fn` holding this process's lock, once `op` has been checked against the state it finds. */
  protected locked<T>(op: Operation, fn: () => Promise<T>): Promise<T> {
    return this.#lock.run(async () => {
      this.check(op);
      return fn();
    });
  }

  /** Runs `fn` as the start of this process; exits wait until it has finished. */
  protected async guardStart<T>(fn: () => Promise<T>): Promise<T> {
    let finish!: () => void;
    this.#startDone = new Promise<void>((r) => {
      finish = r;
    });
    try {
      return await fn();
    } finally {
      // Let the Start reply reach the wire before a held exit is processed.
      setImmediate(finish);
    }
  }

  /** Follows the process's exit through the reaper once its pid is known. */
  protected watchExit(since: Date): void {
    this.ctx.reaper.watch(this.pid, { since }).then(
      async (exit) => {
        await this.#startDone;
        this.onExit(exit);
      },
      (err: Error) => {
        this.ctx.log.error({ pid: this.pid, err: err.message }, "cannot watch process exit");
        // Without a status, report what containerd reports for a lost process.
        this.onExit({ status: 255, exitedAt: new Date() });
      },
    );
  }

  protected onExit(exit: ExitInfo): void {
    if (!this.state.setExited(exit)) return;
    this.io?.processExited();
    this.ctx.log.info({ exec_id: this.execId, pid: this.pid, status: exit.status }, "process exited");
    this.publishExit(exit);
  }

  /** CloseIO: the process reads EOF on stdin once the client has closed its end too. */
  closeStdin(): void {
    this.check("close-io");
    this.io?.closeStdin();
  }

  /** ResizePty; a no-op for a process without a terminal. */
  resize(width: number, height: number): void {
    this.check("resize-pty");
    if (!this.stdio.terminal) return;
    this.io?.resize(width, height);
  }

  abstract start(): Promise<number>;
  abstract kill(signal: number, all: boolean): Promise<void>;
  abstract delete(): Promise<ExitInfo & { pid: number }>;
  protected abstract publishExit(exit: ExitInfo): void;
}
