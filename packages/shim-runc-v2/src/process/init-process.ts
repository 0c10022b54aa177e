// A container's init process: created by `runc create`, started by `runc start`, signalled with
// `runc kill`, frozen and thawed with `runc pause` / `runc resume`, given new limits with
// `runc update`, dumped with `runc checkpoint`, removed with `runc delete`. Its exit ends the
// container. Which request fits which state is process-state-table.ts; the request checks and
// conversions these methods use live in ops/.
import { copyFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import type { runcoptions, task } from "@tsrunc/protocol/shim";
import { BundleFile } from "@tsrunc/shim-contract/bundle-files";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { openStdio } from "../io/open-stdio.js";
import type { StdioPaths } from "../io/stdio-handle.js";
import { type MountSpec, mountRootfs, unmountRootfs } from "../mount.js";
import { checkpointPaths, runcCheckpointOptions } from "../ops/checkpoint.js";
import { type OomWatch, watchOom } from "../ops/oom.js";
import { packMetrics } from "../ops/stats.js";
import { runcErrorToStatus } from "../runc/index.js";
import type { RuncDriver, ShimContext } from "../shim-context.js";
import { sharesPidNamespace } from "./pid-namespace.js";
import type { ExitInfo } from "./process-state.js";
import { refusal } from "./process-state-table.js";
import { ShimProcess } from "./shim-process.js";

/** How long the exit report of a container in a shared pid namespace waits for its leftovers to die. */
const LEFTOVER_WAIT_MS = 2000;

export interface InitOptions {
  id: string;
  bundle: string;
  rootfs: MountSpec[];
  stdio: StdioPaths;
  runc: RuncDriver;
  noPivotRoot?: boolean;
  noNewKeyring?: boolean;
}

export class InitProcess extends ShimProcess {
  readonly kind = "init";
  readonly bundle: string;
  readonly runc: RuncDriver;
  readonly rootfs: MountSpec[];
  /** Publishes /tasks/oom for the container's memory cgroup (ops/oom.ts). */
  oom: OomWatch | undefined;
  /** No pid namespace of its own: its other processes outlive the init unless killed. */
  #sharedPidNamespace = false;

  private constructor(ctx: ShimContext, opts: InitOptions) {
    super(ctx, opts.id, "", opts.stdio);
    this.bundle = opts.bundle;
    this.runc = opts.runc;
    this.rootfs = opts.rootfs;
  }

  /** Mounts the rootfs, opens stdio and runs `runc create`; undoes all of it on failure. */
  static async create(ctx: ShimContext, opts: InitOptions): Promise<InitProcess> {
    const p = new InitProcess(ctx, opts);
    // Read beside the rootfs mount (never rejects): only the exit needs the answer.
    const shared = sharesPidNamespace(opts.bundle);
    await mountRootfs(opts.bundle, opts.rootfs);
    p.#sharedPidNamespace = await shared;
    const pidFile = join(opts.bundle, BundleFile.initPid);
    try {
      p.io = await openStdio(opts.stdio, ctx.makePipe, { containerId: opts.id, namespace: ctx.namespace });
      const since = new Date();
      const created = await opts.runc.create(opts.id, opts.bundle, {
        pidFile,
        stdio: p.io.childStdio,
        consoleSocket: p.io.consoleSocket,
        noPivot: opts.noPivotRoot,
        noNewKeyring: opts.noNewKeyring,
      });
      await p.io.afterCreate();
      p.pid = created.pid;
      p.watchExit(since);
      p.oom = watchOom(ctx, opts.id, p.pid);
    } catch (err) {
      p.io?.close();
      await opts.runc.delete(opts.id, { force: true }).catch(() => {});
      await unmountRootfs(opts.bundle);
      throw runcErrorToStatus(err, "create");
    }
    ctx.events.create({
      containerId: opts.id,
      bundle: opts.bundle,
      rootfs: opts.rootfs,
      io: opts.stdio,
      pid: p.pid,
    });
    return p;
  }

  start(): Promise<number> {
    return this.locked("start", () =>
      this.guardStart(async () => {
        try {
          await this.runc.start(this.containerId);
        } catch (err) {
          throw runcErrorToStatus(err, "start");
        }
        // The process may already have exited: its exit waits for this (guardStart).
        this.state.transition("running");
        this.ctx.events.start({ containerId: this.containerId, pid: this.pid });
        return this.pid;
      }),
    );
  }

  async kill(signal: number, all: boolean): Promise<void> {
    this.check("kill");
    try {
      await this.runc.kill(this.containerId, signal, { all });
    } catch (err) {
      // The init may exit between our check and runc's: runc then says it is not running.
      if (this.state.exit) throw refusal("kill", "stopped");
      throw runcErrorToStatus(err, "kill");
    }
  }

  /** Removes the container from runc, unmounts the rootfs and reports the exit. */
  delete(): Promise<ExitInfo & { pid: number }> {
    return this.locked("delete", async () => {
      if (this.state.status === "created") {
        // Never started: runc delete --force kills the waiting init; its exit arrives via the reaper.
        await this.runc.delete(this.containerId, { force: true }).catch((err) => {
          throw runcErrorToStatus(err, "delete");
        });
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([this.state.wait(), new Promise((r) => (timer = setTimeout(r, 2000)))]);
        clearTimeout(timer);
      } else {
        await this.runc.delete(this.containerId, { force: true }).catch((err) => {
          const status = runcErrorToStatus(err, "delete");
          if (status.code !== Code.NotFound) throw status;
        });
      }
      this.io?.close();
      this.oom?.close();
      await unmountRootfs(this.bundle);
      const exit = this.state.exit ?? { status: 137, exitedAt: new Date() };
      if (!this.state.exit) this.state.setExited(exit);
      this.state.transition("deleted");
      this.ctx.events.delete({
        containerId: this.containerId,
        id: this.containerId,
        pid: this.pid,
        exitStatus: exit.status,
        exitedAt: exit.exitedAt,
      });
      return { ...exit, pid: this.pid };
    });
  }

  /**
   * Pause: `runc pause` freezes every process of the container (the freezer cgroup); State then
   * answers PAUSED, Exec is refused, and /tasks/paused follows.
   */
  pause(): Promise<void> {
    return this.locked("pause", async () => {
      try {
        await this.runc.pause(this.containerId);
      } catch (err) {
        // The init may have exited between our check and runc's.
        if (this.state.exit) throw refusal("pause", "stopped");
        throw runcErrorToStatus(err, "pause");
      }
      if (this.state.status !== "running") {
        // It exited while runc froze it: leave nothing frozen behind.
        await this.runc.resume(this.containerId).catch(() => {});
        throw refusal("pause", this.state.status);
      }
      this.state.transition("paused");
      this.ctx.events.paused({ containerId: this.containerId });
    });
  }

  /** Resume: `runc resume` thaws the container; /tasks/resumed follows. */
  resume(): Promise<void> {
    return this.locked("resume", async () => {
      try {
        await this.runc.resume(this.containerId);
      } catch (err) {
        if (this.state.exit) throw refusal("resume", "stopped");
        throw runcErrorToStatus(err, "resume");
      }
      // An exit recorded meanwhile already moved the state to stopped; that stays.
      if (this.state.status === "paused") this.state.transition("running");
      this.ctx.events.resumed({ containerId: this.containerId });
    });
  }

  /** Update: new cgroup limits, the LinuxResources JSON as received (ops/update.ts). */
  update(resources: string, signal?: AbortSignal): Promise<void> {
    return this.locked("update", async () => {
      try {
        await this.runc.update(this.containerId, resources, signal ? { signal } : undefined);
      } catch (err) {
        if (this.state.exit) throw refusal("update", "stopped");
        throw runcErrorToStatus(err, "update");
      }
    });
  }

  /**
   * Checkpoint: `runc checkpoint` (CRIU) into the request's path (ops/checkpoint.ts). CRIU's work
   * dir is the options' work_path, else a temp dir in the bundle removed afterwards; on failure
   * CRIU's dump.log is kept as <bundle>/criu-dump.log and named in the error, as containerd's
   * shim does. A failed dump leaves the container as it was, so the state does not change. runc
   * is killed when the call's deadline passes.
   */
  checkpoint(path: string, options: runcoptions.CheckpointOptions, signal?: AbortSignal): Promise<void> {
    const { imagePath, workPath } = checkpointPaths(path, options);
    return this.locked("checkpoint", async () => {
      const work = workPath ?? (await mkdtemp(join(this.bundle, "criu-work-")));
      try {
        const opts = runcCheckpointOptions(imagePath, options, work);
        await this.runc.checkpoint(this.containerId, signal ? { ...opts, signal } : opts);
      } catch (err) {
        if (err instanceof TtrpcError) throw err;
        const kept = join(this.bundle, "criu-dump.log");
        const saved = await copyFile(join(work, "dump.log"), kept).then(
          () => true,
          () => false,
        );
        const status = runcErrorToStatus(err, "checkpoint");
        if (!saved) throw status;
        throw new TtrpcError(status.code, `${status.message}\ncriu log: ${kept}`, { cause: err });
      } finally {
        if (!workPath) await rm(work, { recursive: true, force: true }).catch(() => {});
      }
      this.ctx.events.checkpointed({ containerId: this.containerId, checkpoint: imagePath });
    });
  }

  /** Stats: `runc events --stats` packed as containerd's cgroup Metrics (ops/stats.ts). */
  async stats(signal?: AbortSignal, unified?: boolean): Promise<task.StatsResponse> {
    // A stopped container's cgroup is about to go; runc refuses too ("is not running").
    this.check("stats");
    let stats: Awaited<ReturnType<RuncDriver["stats"]>>;
    try {
      stats = await this.runc.stats(this.containerId, signal ? { signal } : undefined);
    } catch (err) {
      if (this.state.exit) throw refusal("stats", "stopped");
      throw runcErrorToStatus(err, "stats");
    }
    return { stats: packMetrics(stats, this.oom?.cgroup, unified) };
  }

  protected override onExit(exit: ExitInfo): void {
    // An OOM kill the kernel has signalled is published before the exit it caused.
    this.oom?.check();
    const wasPaused = this.state.status === "paused";
    const report = () => {
      super.onExit(exit);
      if (wasPaused) this.#thawAfterExit();
    };
    if (!this.#sharedPidNamespace) {
      report();
      return;
    }
    // The init of a container in a shared pid namespace (a pod's, the host's) leaves its other
    // processes running: kill them before the exit is reported, as containerd's shim does, so
    // that the container's output has ended (a CRI reader gets EOF) and its cgroup can go.
    void this.#killLeftovers().finally(report);
  }

  /**
   * `runc kill --all KILL`, then wait (at most LEFTOVER_WAIT_MS) until the container's cgroup
   * lists no process: a SIGKILLed process still holds its fds until it is scheduled to exit, and
   * under load that came after the exit report (CRI then cut the container's output streams).
   * Zombies are not listed. Never throws.
   */
  async #killLeftovers(): Promise<void> {
    try {
      await this.runc.kill(this.containerId, 9, { all: true });
    } catch (err) {
      this.ctx.log.debug({ err: (err as Error).message }, "kill --all after the init's exit");
    }
    const procs = this.oom ? join(this.oom.cgroup.dir, "cgroup.procs") : undefined;
    const deadline = Date.now() + LEFTOVER_WAIT_MS;
    for (;;) {
      let left: number;
      try {
        left = procs
          ? (await readFile(procs, "utf8")).split("\n").filter(Boolean).length
          : (await this.runc.ps(this.containerId)).length;
      } catch {
        return; // the cgroup (or the container) is gone: nothing is left
      }
      if (left === 0) return;
      if (Date.now() > deadline) {
        this.ctx.log.warn({ left }, "processes left after the init's exit and kill --all");
        return;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /**
   * The init exited while paused: thaw the cgroup, as containerd's shim does, so that nothing
   * else in it stays frozen (it could be neither killed nor reaped). Facts (containerd 1.6's
   * pkg/process/init_state.go, runc 1.1.5 here): a paused container's Kill simply runs `runc
   * kill`; runc thaws the cgroup itself after SIGKILL to a paused init (cgroup v1 holds signals
   * to frozen tasks until they thaw), so SIGKILL ends a paused container at once, while other
   * signals stay pending until Resume. Never throws.
   */
  #thawAfterExit(): void {
    this.runc.resume(this.containerId).catch((err: Error) => {
      // runc says "container not running" once the container is fully stopped: nothing is frozen.
      this.ctx.log.debug({ err: err.message }, "resume after exit while paused");
    });
  }

  protected publishExit(exit: ExitInfo): void {
    this.ctx.events.exit({
      containerId: this.containerId,
      id: this.containerId,
      pid: this.pid,
      exitStatus: exit.status,
      exitedAt: exit.exitedAt,
    });
  }
}
