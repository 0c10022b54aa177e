// Test helper (no tests of its own): an in-memory runc and reaper behind a ShimContext, so the
// Task service and its processes run in milliseconds without containers. The fake keeps what
// matters to the shim's state machine: runc's own refusals (classified like the real ones), a
// container's processes dying with its init, SIGKILL ending a paused container, the reaper
// reporting each exit once, however late its watcher comes. Pids are above the kernel's limit
// (PID_MAX_LIMIT, 2^22), so nothing real is ever signalled or read from /proc.
import pino from "pino";
import { RuncError, type RuncStats } from "../runc/index.js";
import type { Reaper, RuncDriver, ShimContext, TaskEvents } from "../shim-context.js";
import type { ExitInfo } from "./process-state.js";

type Command = keyof RuncDriver;

interface FakeContainer {
  pid: number;
  status: "created" | "running" | "paused" | "stopped";
  execs: Set<number>;
}

const FIRST_PID = 5_000_000;

function refused(command: string, message: string): RuncError {
  const kind = /does not exist/.test(message)
    ? "not-found"
    : /not running|stopped/.test(message)
      ? "not-running"
      : "invalid-state";
  return new RuncError(message, { kind, command });
}

export class FakeHost {
  /** Every runc command run, as "command id". */
  readonly calls: string[] = [];
  /** Every event raised, as "topic id" or "topic id/exec-id" (exit and delete add the status). */
  readonly events: string[] = [];
  readonly containers = new Map<string, FakeContainer>();
  /** Replaces a runc command: runs instead of the fake's own behaviour (throw to fail it). */
  readonly hooks: Partial<Record<Command, (...args: unknown[]) => unknown>> = {};
  #nextPid = FIRST_PID;
  readonly #alive = new Set<number>();
  readonly #exits = new Map<number, ExitInfo>();
  readonly #watchers = new Map<number, (e: ExitInfo) => void>();

  readonly reaper: Reaper = {
    watch: (pid) =>
      new Promise((resolve) => {
        const exit = this.#exits.get(pid);
        if (exit) resolve(exit);
        else this.#watchers.set(pid, resolve);
      }),
  };

  /** The process `pid` ends with `status`; an init takes its container's processes with it. */
  exit(pid: number, status: number): void {
    if (!this.#alive.delete(pid)) return;
    const exit = { status, exitedAt: new Date() };
    this.#exits.set(pid, exit);
    this.#watchers.get(pid)?.(exit);
    this.#watchers.delete(pid);
    for (const c of this.containers.values()) {
      c.execs.delete(pid);
      if (c.pid !== pid) continue;
      c.status = "stopped";
      for (const e of c.execs) this.exit(e, 137);
    }
  }

  isAlive(pid: number): boolean {
    return this.#alive.has(pid);
  }

  /** kill(2) of an exec's pid: SIGKILL and SIGTERM end it; ESRCH once it is gone. */
  readonly killPid = (pid: number, signal: number): void => {
    if (!this.#alive.has(pid)) throw Object.assign(new Error("kill ESRCH"), { code: "ESRCH" });
    if (signal === 9 || signal === 15) setImmediate(() => this.exit(pid, 128 + signal));
  };

  #spawn(): number {
    const pid = this.#nextPid++;
    this.#alive.add(pid);
    return pid;
  }

  #get(command: string, id: string): FakeContainer {
    const c = this.containers.get(id);
    if (!c) throw refused(command, "container does not exist");
    return c;
  }

  /** Runs the hook for `command` if there is one, else `own`; records the call either way. */
  #run<T>(command: Command, id: string, args: unknown[], own: () => T): Promise<T> {
    this.calls.push(`${command} ${id}`);
    const hook = this.hooks[command];
    try {
      return Promise.resolve((hook ? hook(...args) : own()) as T);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  readonly runc: RuncDriver = {
    create: (id, ...rest) =>
      this.#run("create", id, [id, ...rest], () => {
        if (this.containers.has(id)) throw refused("create", "container with given ID already exists");
        const pid = this.#spawn();
        this.containers.set(id, { pid, status: "created", execs: new Set() });
        return { pid };
      }),
    start: (id, ...rest) =>
      this.#run("start", id, [id, ...rest], () => {
        const c = this.#get("start", id);
        if (c.status === "stopped") throw refused("start", "cannot start a container that has stopped");
        if (c.status !== "created") throw refused("start", "cannot start an already running container");
        c.status = "running";
      }),
    kill: (id, signal, ...rest) =>
      this.#run("kill", id, [id, signal, ...rest], () => {
        const c = this.#get("kill", id);
        if (c.status === "stopped") throw refused("kill", "container not running");
        // runc thaws a paused container after SIGKILL; other signals wait for Resume.
        if (signal === 9 || (signal === 15 && c.status !== "paused"))
          setImmediate(() => this.exit(c.pid, 128 + signal));
      }),
    delete: (id, ...rest) =>
      this.#run("delete", id, [id, ...rest], () => {
        const c = this.containers.get(id);
        if (!c) return; // --force of a missing container succeeds
        this.containers.delete(id);
        if (c.status !== "stopped") setImmediate(() => this.exit(c.pid, 137));
      }),
    ps: (id, ...rest) =>
      this.#run("ps", id, [id, ...rest], () => {
        const c = this.#get("ps", id);
        return c.status === "stopped" ? [] : [c.pid, ...c.execs];
      }),
    pause: (id, ...rest) =>
      this.#run("pause", id, [id, ...rest], () => {
        const c = this.#get("pause", id);
        if (c.status !== "running") throw refused("pause", "container not running");
        c.status = "paused";
      }),
    resume: (id, ...rest) =>
      this.#run("resume", id, [id, ...rest], () => {
        const c = this.#get("resume", id);
        if (c.status !== "paused") throw refused("resume", "container not paused");
        c.status = "running";
      }),
    update: (id, ...rest) =>
      this.#run("update", id, [id, ...rest], () => {
        if (this.#get("update", id).status === "stopped") throw refused("update", "container not running");
      }),
    exec: (id, ...rest) =>
      this.#run("exec", id, [id, ...rest], () => {
        const c = this.#get("exec", id);
        if (c.status === "stopped") throw refused("exec", "cannot exec in a stopped container");
        const pid = this.#spawn();
        c.execs.add(pid);
        return { pid };
      }),
    checkpoint: (id, ...rest) =>
      this.#run("checkpoint", id, [id, ...rest], () => {
        if (this.#get("checkpoint", id).status === "stopped")
          throw refused("checkpoint", "container not running");
      }),
    stats: (id, ...rest) =>
      this.#run("stats", id, [id, ...rest], (): RuncStats => {
        if (this.#get("stats", id).status === "stopped") throw refused("events", "container not running");
        return { pids: { current: 1 } } as RuncStats;
      }),
  };

  readonly taskEvents: TaskEvents = new Proxy({} as TaskEvents, {
    get:
      (_, topic: string) =>
      (e: { containerId: string; id?: string; execId?: string; exitStatus?: number }) => {
        const who = e.execId
          ? `${e.containerId}/${e.execId}`
          : e.id && e.id !== e.containerId
            ? `${e.containerId}/${e.id}`
            : e.containerId;
        this.events.push(e.exitStatus === undefined ? `${topic} ${who}` : `${topic} ${who} ${e.exitStatus}`);
      },
  });

  /** A ShimContext over this host; containers' bundles go beside `shimBundle`. */
  context(shimBundle: string): ShimContext {
    return {
      namespace: "test",
      shimBundle,
      reaper: this.reaper,
      makePipe: () => {
        throw new Error("the fake host makes no pipes: give the processes no stdin");
      },
      events: this.taskEvents,
      log: pino({ level: "silent" }),
      makeRunc: () => this.runc,
      killPid: this.killPid,
    };
  }
}
