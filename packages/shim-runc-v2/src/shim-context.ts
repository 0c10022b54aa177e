// What the processes and containers of one shim share: how to run runc, the reaper, the event
// publisher and the logger. Passed in explicitly so tests can build a shim in-process, with a
// fake runc and reaper if they like (task-service.test.ts).
import type { Logger } from "pino";
import type { MakePipe, StdioPaths } from "./io/stdio-handle.js";
import type { MountSpec } from "./mount.js";
import type { ExitInfo } from "./process/process-state.js";
import type { Runc, RuncOptions } from "./runc/index.js";

export interface Reaper {
  /** Resolves with the exit of `pid` (a process re-parented to us); `since` guards pid reuse. */
  watch(pid: number, opts?: { since?: Date }): Promise<ExitInfo>;
}

/** The runc commands the Task service uses (the runc driver, or a fake in tests). */
export type RuncDriver = Pick<
  Runc,
  | "create"
  | "start"
  | "kill"
  | "delete"
  | "ps"
  | "pause"
  | "resume"
  | "update"
  | "exec"
  | "checkpoint"
  | "stats"
>;

/** The task events a shim raises; each is packed and queued for containerd in call order. */
export interface TaskEvents {
  create(e: { containerId: string; bundle: string; rootfs: MountSpec[]; io: StdioPaths; pid: number }): void;
  start(e: { containerId: string; pid: number }): void;
  exit(e: { containerId: string; id: string; pid: number; exitStatus: number; exitedAt: Date }): void;
  delete(e: { containerId: string; id: string; pid: number; exitStatus: number; exitedAt: Date }): void;
  execAdded(e: { containerId: string; execId: string }): void;
  execStarted(e: { containerId: string; execId: string; pid: number }): void;
  paused(e: { containerId: string }): void;
  resumed(e: { containerId: string }): void;
  oom(e: { containerId: string }): void;
  checkpointed(e: { containerId: string; checkpoint: string }): void;
}

export interface ShimContext {
  namespace: string;
  /** The bundle the shim was started in; containers' bundles must be its siblings. */
  shimBundle: string;
  reaper: Reaper;
  makePipe: MakePipe;
  events: TaskEvents;
  log: Logger;
  /** Makes the runc driver of a container; `new Runc(options)` when absent. */
  makeRunc?: (options: RuncOptions) => RuncDriver;
  /** Signals an exec's process (kill(2)); `process.kill` when absent. */
  killPid?: (pid: number, signal: number) => void;
}
