// Pause and Resume: `runc pause` / `runc resume` freeze and thaw every process of the container
// (the freezer cgroup). The init's state goes running ⇄ paused, so State answers PAUSED, Exec is
// refused while paused, and /tasks/paused and /tasks/resumed follow each change.
//
// Kill while paused (facts from containerd 1.6's pkg/process/init_state.go and runc 1.1.5 here):
// containerd's paused state simply runs `runc kill`. runc thaws the cgroup itself after sending
// SIGKILL to a paused container's init (cgroup v1 holds signals to frozen tasks until they thaw),
// so SIGKILL ends a paused container at once; other signals stay pending until Resume. When the
// init exits while paused, containerd's shim runs `runc resume` so that nothing is left frozen
// (whatever else was in the cgroup could not otherwise be killed or reaped); so do we
// (thawAfterExit, called by the init's exit handling).
import type { task } from "@tsrunc/protocol/shim";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import type { Container } from "../container.js";
import type { ProcessState } from "../process/process-state.js";
import { type Runc, runcErrorToStatus } from "../runc/index.js";
import type { ShimContext, TaskEvents } from "../shim-context.js";
import { serialized } from "./serial.js";

/** What Pause and Resume need of a container's init. */
export interface PausableInit {
  readonly containerId: string;
  readonly runc: Runc;
  readonly state: ProcessState;
}

/** How the handlers find a container (TaskServiceImpl.container: InvalidArgument / NotFound). */
export interface ContainerLookup {
  container(id: string): Container;
}

const stopped = () => new TtrpcError(Code.FailedPrecondition, "cannot pause a stopped process");

export function pauseInit(init: PausableInit, events: TaskEvents): Promise<void> {
  return serialized(init, async () => {
    init.state.require("pause", "running");
    try {
      await init.runc.pause(init.containerId);
    } catch (err) {
      // The init may have exited between our check and runc's.
      if (init.state.exit) throw stopped();
      throw runcErrorToStatus(err, "pause");
    }
    if (init.state.status !== "running") {
      // It exited while runc froze it: leave nothing frozen behind.
      await init.runc.resume(init.containerId).catch(() => {});
      throw stopped();
    }
    init.state.transition("paused");
    events.paused({ containerId: init.containerId });
  });
}

export function resumeInit(init: PausableInit, events: TaskEvents): Promise<void> {
  return serialized(init, async () => {
    init.state.require("resume", "paused");
    try {
      await init.runc.resume(init.containerId);
    } catch (err) {
      if (init.state.exit) throw new TtrpcError(Code.FailedPrecondition, "cannot resume a stopped process");
      throw runcErrorToStatus(err, "resume");
    }
    // An exit recorded meanwhile already moved the state to stopped; that stays.
    if (init.state.status === "paused") init.state.transition("running");
    events.resumed({ containerId: init.containerId });
  });
}

/** The init exited while paused: thaw the cgroup, as containerd's shim does. Never throws. */
export function thawAfterExit(init: PausableInit, log: ShimContext["log"]): void {
  init.runc.resume(init.containerId).catch((err: Error) => {
    // runc says "container not running" once the container is fully stopped: nothing is frozen.
    log.debug({ err: err.message }, "resume after exit while paused");
  });
}

export async function pauseTask(
  svc: ContainerLookup,
  req: task.PauseRequest,
): Promise<Record<string, never>> {
  await svc.container(req.id).init.pause();
  return {};
}

export async function resumeTask(
  svc: ContainerLookup,
  req: task.ResumeRequest,
): Promise<Record<string, never>> {
  await svc.container(req.id).init.resume();
  return {};
}
