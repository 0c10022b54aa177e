// A process added to a container with Exec: registered (created) by Exec, run by Start with
// `runc exec --detach`, signalled directly by pid, removed by Delete. Which request fits which
// state (its own, and for Start its container's) is process-state-table.ts.
import { join } from "node:path";
import type { OciProcess } from "@tsrunc/protocol/shim";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { openStdio } from "../io/open-stdio.js";
import type { StdioPaths } from "../io/stdio-handle.js";
import { type ProcessSpec, runcErrorToStatus } from "../runc/index.js";
import type { ShimContext } from "../shim-context.js";
import type { InitProcess } from "./init-process.js";
import type { ExitInfo } from "./process-state.js";
import { refusal } from "./process-state-table.js";
import { ShimProcess } from "./shim-process.js";

export class ExecProcess extends ShimProcess {
  readonly kind = "exec";
  readonly #init: InitProcess;
  readonly #spec: OciProcess;

  constructor(ctx: ShimContext, init: InitProcess, execId: string, stdio: StdioPaths, spec: OciProcess) {
    super(ctx, init.containerId, execId, stdio);
    this.#init = init;
    this.#spec = spec;
    ctx.events.execAdded({ containerId: this.containerId, execId });
  }

  start(): Promise<number> {
    return this.locked("start", () => {
      this.#init.check("exec-start");
      return this.guardStart(() => this.#start());
    });
  }

  async #start(): Promise<number> {
    // The exec's process spec decides the terminal; containerd's flag must agree with it.
    const spec = { ...this.#spec, terminal: this.stdio.terminal } as ProcessSpec;
    try {
      this.io = await openStdio(this.stdio, this.ctx.makePipe, {
        containerId: this.containerId,
        namespace: this.ctx.namespace,
      });
      const since = new Date();
      const { pid } = await this.#init.runc.exec(this.containerId, spec, {
        pidFile: join(this.#init.bundle, `${this.execId}.pid`),
        stdio: this.io.childStdio,
        consoleSocket: this.io.consoleSocket,
      });
      await this.io.afterCreate();
      this.pid = pid;
      this.watchExit(since);
    } catch (err) {
      this.io?.close();
      this.io = undefined;
      throw runcErrorToStatus(err, "exec");
    }
    this.state.transition("running");
    this.ctx.events.execStarted({ containerId: this.containerId, execId: this.execId, pid: this.pid });
    return this.pid;
  }

  async kill(signal: number): Promise<void> {
    this.check("kill");
    try {
      if (this.ctx.killPid) this.ctx.killPid(this.pid, signal);
      else process.kill(this.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ESRCH") throw refusal("kill", "stopped", "exec");
      throw new TtrpcError(Code.Unknown, `kill exec ${this.execId}: ${(err as Error).message}`);
    }
  }

  delete(): Promise<ExitInfo & { pid: number }> {
    return this.locked("delete", async () => {
      this.io?.close();
      const exit = this.state.exit ?? { status: 0, exitedAt: new Date() };
      this.state.transition("deleted");
      return { ...exit, pid: this.pid };
    });
  }

  protected publishExit(exit: ExitInfo): void {
    this.ctx.events.exit({
      containerId: this.containerId,
      id: this.execId,
      pid: this.pid,
      exitStatus: exit.status,
      exitedAt: exit.exitedAt,
    });
  }
}
