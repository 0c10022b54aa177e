// The shim's reaper: learns the exit status of the container's processes (init, execs and any
// orphan re-parented to us) without ever reaping a child that Node spawned itself.
// Design and races: see "Native addon" in packages/shim-runc-v2/README.md.
import { addon } from "./addon.js";

/** A reaped process. status is containerd's: the exit code, or 128 + signal if killed. */
export interface ProcessExit {
  readonly pid: number;
  readonly status: number;
  readonly exitedAt: Date;
}

export interface WatchOptions {
  /**
   * Ignore kept exits of this pid from before this time (take it just before starting runc), so
   * that an old exit of a reused pid cannot match. Exits reaped after watch() always match.
   */
  since?: Date;
}

export interface ReaperOptions {
  /** How long reaped exits are kept for a later watch(); default 5 minutes. */
  retainMs?: number;
  /** While a watch waits, sweep this often as a safety net; default 1000 ms. */
  safetySweepMs?: number;
}

export interface Reaper {
  /**
   * Resolves with pid's exit: at once if it was already reaped (within retainMs, not before
   * since), else when it is. Rejects with code ESRCH if pid is neither kept nor a descendant of
   * ours (never ours, or reaped by someone else), and with code ECANCELED on close().
   */
  watch(pid: number, options?: WatchOptions): Promise<ProcessExit>;
  /** Calls listener for every process reaped from now on; returns the unsubscribe function. */
  onExit(listener: (exit: ProcessExit) => void): () => void;
  /** Reaps now (SIGCHLD does this anyway); returns what this sweep reaped. */
  reap(): ProcessExit[];
  /** Stops reaping and rejects pending watches. */
  close(): void;
}

/** prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants re-parent to us, not to pid 1. */
export function setChildSubreaper(): void {
  addon().setChildSubreaper();
}

export function isChildSubreaper(): boolean {
  return addon().isChildSubreaper();
}

const MAX_RETAINED = 10_000;

interface Watcher {
  resolve(exit: ProcessExit): void;
  reject(error: Error): void;
}

let running: ReaperImpl | undefined;

/**
 * Starts the process's one reaper (two would split the exits between them); throws if one is
 * already running. Call setChildSubreaper() first, so that container processes come to us.
 */
export function createReaper(options: ReaperOptions = {}): Reaper {
  if (running) throw new Error("a reaper is already running in this process");
  running = new ReaperImpl(options.retainMs ?? 5 * 60_000, options.safetySweepMs ?? 1000);
  return running;
}

function errorWithCode(message: string, code: string): Error {
  return Object.assign(new Error(message), { code });
}

class ReaperImpl implements Reaper {
  readonly #native = addon();
  readonly #retainMs: number;
  readonly #safetySweepMs: number;
  /** pid → its latest exit, in the order reaped (so the oldest come first). */
  readonly #retained = new Map<number, ProcessExit>();
  readonly #watchers = new Map<number, Set<Watcher>>();
  readonly #listeners = new Set<(exit: ProcessExit) => void>();
  #safetyTimer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #onSigchld = () => {
    this.reap();
  };

  constructor(retainMs: number, safetySweepMs: number) {
    this.#retainMs = retainMs;
    this.#safetySweepMs = safetySweepMs;
    // SIGCHLD comes when a child exits and when an already-dead orphan is re-parented to us.
    // A listener, not a handler of our own: libuv keeps getting SIGCHLD for its children.
    process.on("SIGCHLD", this.#onSigchld);
    this.reap(); // zombies that re-parented before we started
  }

  reap(): ProcessExit[] {
    if (this.#closed) return [];
    const exits = this.#native
      .reapExited()
      .map((e): ProcessExit => ({ pid: e.pid, status: e.status, exitedAt: new Date(e.exitedAt) }));
    this.#prune();
    for (const exit of exits) {
      this.#retained.delete(exit.pid); // re-insert: keep the map in reap order
      this.#retained.set(exit.pid, exit);
    }
    for (const exit of exits) {
      const watchers = this.#watchers.get(exit.pid);
      this.#watchers.delete(exit.pid);
      for (const w of watchers ?? []) w.resolve(exit);
      for (const listener of this.#listeners) {
        try {
          listener(exit);
        } catch (error) {
          // Like a throwing event listener, but without losing the other exits of this sweep.
          process.nextTick(() => {
            throw error;
          });
        }
      }
    }
    this.#updateSafetyTimer();
    return exits;
  }

  watch(pid: number, options: WatchOptions = {}): Promise<ProcessExit> {
    if (!Number.isSafeInteger(pid) || pid <= 0) return Promise.reject(new RangeError(`invalid pid ${pid}`));
    if (this.#closed) return Promise.reject(errorWithCode("reaper is closed", "ECANCELED"));
    this.reap();
    const kept = this.#retained.get(pid);
    if (kept && (!options.since || kept.exitedAt.getTime() >= options.since.getTime())) {
      return Promise.resolve(kept);
    }
    if (!this.#native.isDescendant(pid)) return Promise.reject(this.#notOurs(pid));
    return new Promise<ProcessExit>((resolve, reject) => {
      const set = this.#watchers.get(pid) ?? new Set();
      this.#watchers.set(pid, set.add({ resolve, reject }));
      this.#updateSafetyTimer();
    });
  }

  onExit(listener: (exit: ProcessExit) => void): () => void {
    const wrapped = (exit: ProcessExit) => listener(exit); // so the same listener can subscribe twice
    this.#listeners.add(wrapped);
    return () => {
      this.#listeners.delete(wrapped);
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    process.off("SIGCHLD", this.#onSigchld);
    clearInterval(this.#safetyTimer);
    this.#safetyTimer = undefined;
    const watchers = [...this.#watchers.values()];
    this.#watchers.clear();
    this.#listeners.clear();
    for (const set of watchers) for (const w of set) w.reject(errorWithCode("reaper is closed", "ECANCELED"));
    if (running === this) running = undefined;
  }

  #notOurs(pid: number): Error {
    return errorWithCode(
      `pid ${pid} has no kept exit and is not a descendant of this process ` +
        "(reaped elsewhere, never ours, or the subreaper is off)",
      "ESRCH",
    );
  }

  #prune(): void {
    const oldest = Date.now() - this.#retainMs;
    for (const [pid, exit] of this.#retained) {
      if (exit.exitedAt.getTime() >= oldest && this.#retained.size <= MAX_RETAINED) break;
      this.#retained.delete(pid);
    }
  }

  // The safety sweep runs (and keeps the process alive, like a pending child) only while a
  // watch waits. It also rejects watches of pids that can no longer reach us.
  #updateSafetyTimer(): void {
    if (this.#watchers.size === 0 || this.#closed) {
      clearInterval(this.#safetyTimer);
      this.#safetyTimer = undefined;
    } else if (!this.#safetyTimer) {
      this.#safetyTimer = setInterval(() => this.#safetySweep(), this.#safetySweepMs);
    }
  }

  #safetySweep(): void {
    this.reap();
    for (const [pid, set] of this.#watchers) {
      // Still a zombie of ours if it exited after reap(): then isDescendant is true.
      if (this.#native.isDescendant(pid)) continue;
      this.#watchers.delete(pid);
      for (const w of set) w.reject(this.#notOurs(pid));
    }
    this.#updateSafetyTimer();
  }
}
