// /tasks/oom: tells containerd when the kernel's OOM killer acted in a container's memory cgroup.
//
// - cgroup v1: the memory controller signals an eventfd registered in cgroup.event_control
//   against memory.oom_control, at the moment the cgroup runs out of memory (before the victim
//   is killed; memory.oom_control's oom_kill counter still reads 0 then). As containerd's shim
//   does, every signal while the cgroup exists is one event; the kernel also signals the eventfd
//   when the cgroup is removed, which is not an OOM and ends the watch.
// - cgroup v2: memory.events changes raise inotify IN_MODIFY; an event is due when its oom_kill
//   counter grew (containerd's v2 watcher compares the same counter).
//
// Order: containerd's shim tends to publish /tasks/oom before the killed init's /tasks/exit. The
// kernel signals before the kill, but the signal and SIGCHLD reach us through the same loop in
// no promised order, so the init calls check() just before it publishes its exit: a pending
// signal is turned into /tasks/oom first. Measured here (cgroup v1): the signal arrives before
// the exit in every run anyway.
import { closeSync, type FSWatcher, openSync, readFileSync, watch, writeFileSync } from "node:fs";
import { join } from "node:path";
import { EventCounter } from "@tsrunc/native/eventfd";
import type { ShimContext } from "../shim-context.js";
import { type MemoryCgroup, memoryCgroupOfPid, parseFlatKeyed } from "./cgroup.js";

export interface OomWatch {
  /** The container's memory cgroup (Stats reads memory.oom_control / memory.events there). */
  readonly cgroup: MemoryCgroup;
  /** Publishes /tasks/oom now for an OOM the kernel has already signalled but we have not seen. */
  check(): void;
  close(): void;
}

/**
 * Starts watching the memory cgroup of `pid` (a container's init, right after `runc create`).
 * Never throws: without a memory cgroup or the means to watch it, the container simply gets no
 * OOM events, which is logged (containerd's shim does the same).
 */
export function watchOom(
  ctx: Pick<ShimContext, "events" | "log">,
  containerId: string,
  pid: number,
): OomWatch | undefined {
  const cgroup = memoryCgroupOfPid(pid);
  if (!cgroup) {
    ctx.log.warn({ pid }, "no memory cgroup found: no OOM events for this container");
    return undefined;
  }
  const publish = () => {
    ctx.log.info({ cgroup: cgroup.dir }, "OOM in the container's memory cgroup");
    ctx.events.oom({ containerId });
  };
  try {
    return watchMemoryCgroup(cgroup, publish, ctx.log);
  } catch (err) {
    ctx.log.warn({ cgroup: cgroup.dir, err: (err as Error).message }, "cannot watch for OOM");
    return undefined;
  }
}

type Log = Pick<ShimContext["log"], "warn">;

/** The watcher for this cgroup's version; throws when it cannot be set up. */
export function watchMemoryCgroup(cgroup: MemoryCgroup, publish: () => void, log: Log): OomWatch {
  return cgroup.version === 1 ? new OomWatchV1(cgroup, publish, log) : new OomWatchV2(cgroup, publish, log);
}

/** cgroup v1: eventfd + cgroup.event_control. */
export class OomWatchV1 implements OomWatch {
  readonly cgroup: MemoryCgroup;
  readonly #counter: EventCounter;
  readonly #control: number;
  readonly #publish: () => void;
  #closed = false;

  constructor(cgroup: MemoryCgroup, publish: () => void, log: Log) {
    this.cgroup = cgroup;
    this.#publish = publish;
    this.#counter = new EventCounter();
    try {
      // The registration holds this fd of memory.oom_control; ours may be closed only at the end.
      this.#control = openSync(join(cgroup.dir, "memory.oom_control"), "r");
      try {
        writeFileSync(join(cgroup.dir, "cgroup.event_control"), `${this.#counter.fd} ${this.#control}`);
      } catch (err) {
        closeSync(this.#control);
        throw err;
      }
    } catch (err) {
      this.#counter.close();
      throw err;
    }
    this.#counter.watch(
      () => this.#signalled(),
      (err) => {
        log.warn({ err: err.message }, "OOM eventfd failed; no more OOM events");
        this.close();
      },
    );
  }

  check(): void {
    if (this.#closed) return;
    let count: bigint;
    try {
      count = this.#counter.take();
    } catch {
      this.close(); // EBADF and the like: this watch is over, the exit must still go out
      return;
    }
    if (count > 0n) this.#signalled();
  }

  #signalled(): void {
    // The kernel also signals when the cgroup goes away: that is the end, not an OOM.
    if (this.#cgroupExists()) this.#publish();
    else this.close();
  }

  #cgroupExists(): boolean {
    try {
      readFileSync(join(this.cgroup.dir, "memory.oom_control"));
      return true;
    } catch {
      return false;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#counter.close();
    closeSync(this.#control);
  }
}

/** cgroup v2: inotify on memory.events, oom_kill counter. */
export class OomWatchV2 implements OomWatch {
  readonly cgroup: MemoryCgroup;
  readonly #publish: () => void;
  readonly #watcher: FSWatcher;
  #lastKills: number;
  #closed = false;

  constructor(cgroup: MemoryCgroup, publish: () => void, log: Log) {
    this.cgroup = cgroup;
    this.#publish = publish;
    const file = join(cgroup.dir, "memory.events");
    this.#lastKills = this.#kills() ?? 0;
    this.#watcher = watch(file, { persistent: true }, () => this.check());
    this.#watcher.on("error", (err) => {
      // The cgroup was removed (or inotify failed): nothing more to watch.
      if (!this.#closed) log.warn({ err: err.message }, "memory.events watch ended");
      this.close();
    });
  }

  #kills(): number | undefined {
    try {
      return parseFlatKeyed(readFileSync(join(this.cgroup.dir, "memory.events"), "utf8")).oom_kill;
    } catch {
      return undefined;
    }
  }

  check(): void {
    if (this.#closed) return;
    const kills = this.#kills();
    if (kills === undefined) {
      this.close(); // the cgroup is gone
    } else if (kills > this.#lastKills) {
      this.#lastKills = kills;
      this.#publish();
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watcher.close();
  }
}
