// A container's init process: created by `runc create`, started by `runc start`, signalled with
// `runc kill`, removed with `runc delete`. Its exit ends the container.
import { join } from "node:path";
import { BundleFile } from "@tsrunc/shim-contract/bundle-files";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { openStdio } from "../io/open-stdio.js";
import type { StdioPaths } from "../io/stdio.js";
import { type MountSpec, mountRootfs, unmountRootfs } from "../mount.js";
import { checkpointInit } from "../ops/checkpoint.js";
import { type OomWatch, watchOom } from "../ops/oom.js";
import { pauseInit, resumeInit, thawAfterExit } from "../ops/pause.js";
import { type Runc, runcErrorToStatus } from "../runc/index.js";
import type { ShimContext } from "../shim-context.js";
import type { ExitInfo } from "./process-state.js";
import { ShimProcess } from "./shim-process.js";

export interface InitOptions {
  id: string;
  bundle: string;
  rootfs: MountSpec[];
  stdio: StdioPaths;
  runc: Runc;
  noPivotRoot?: boolean;
  noNewKeyring?: boolean;
}

export class InitProcess extends ShimProcess {
  readonly bundle: string;
  readonly runc: Runc;
  readonly rootfs: MountSpec[];
  /** Publishes /tasks/oom for the container's memory cgroup (ops/oom.ts). */
  oom: OomWatch | undefined;

  private constructor(ctx: ShimContext, opts: InitOptions) {
    super(ctx, opts.id, "", opts.stdio);
    this.bundle = opts.bundle;
    this.runc = opts.runc;
    this.rootfs = opts.rootfs;
  }

  /** Mounts the rootfs, opens stdio and runs `runc create`; undoes all of it on failure. */
  static async create(ctx: ShimContext, opts: InitOptions): Promise<InitProcess> {
    const p = new InitProcess(ctx, opts);
    await mountRootfs(opts.bundle, opts.rootfs);
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

  async start(): Promise<number> {
    this.state.require("start", "created");
    return this.guardStart(async () => {
      try {
        await this.runc.start(this.containerId);
      } catch (err) {
        throw runcErrorToStatus(err, "start");
      }
      // The process may already have exited: its exit waits for this (guardStart).
      this.state.transition("running");
      this.ctx.events.start({ containerId: this.containerId, pid: this.pid });
      return this.pid;
    });
  }

  async kill(signal: number, all: boolean): Promise<void> {
    if (this.state.status === "stopped" || this.state.status === "deleted") {
      throw new TtrpcError(Code.NotFound, "process already finished");
    }
    try {
      await this.runc.kill(this.containerId, signal, { all });
    } catch (err) {
      // The init may exit between our check and runc's: runc then says it is not running.
      if (this.state.exit) throw new TtrpcError(Code.NotFound, "process already finished");
      throw runcErrorToStatus(err, "kill");
    }
  }

  /** Pause, Resume and Checkpoint live in ops/; these bind them to this process's context. */
  pause(): Promise<void> {
    return pauseInit(this, this.ctx.events);
  }

  resume(): Promise<void> {
    return resumeInit(this, this.ctx.events);
  }

  checkpoint(req: Parameters<typeof checkpointInit>[2], signal?: AbortSignal): Promise<void> {
    return checkpointInit(this, this.ctx.events, req, signal);
  }

  protected override onExit(exit: ExitInfo): void {
    // An OOM kill the kernel has signalled is published before the exit it caused.
    this.oom?.check();
    const wasPaused = this.state.status === "paused";
    super.onExit(exit);
    if (wasPaused) thawAfterExit(this, this.ctx.log);
  }

  /** Removes the container from runc, unmounts the rootfs and reports the exit. */
  async delete(): Promise<ExitInfo & { pid: number }> {
    this.state.require("delete", "created", "stopped");
    if (this.state.status === "created") {
      // Never started: runc delete --force kills the waiting init; its exit arrives via the reaper.
      await this.runc.delete(this.containerId, { force: true }).catch((err) => {
        throw runcErrorToStatus(err, "delete");
      });
      await Promise.race([this.state.wait(), new Promise((r) => setTimeout(r, 2000))]);
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
