// One container in this shim: its init process and its execs. The shim usually serves one
// container; for a pod (CRI sandbox annotation) it serves every container of the pod.
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import type { InitProcess } from "./process/init-process.js";
import type { ShimProcess } from "./process/shim-process.js";

export class Container {
  readonly id: string;
  readonly init: InitProcess;
  readonly execs = new Map<string, ShimProcess>();

  constructor(init: InitProcess) {
    this.id = init.containerId;
    this.init = init;
  }

  get bundle(): string {
    return this.init.bundle;
  }

  /** The init for "", else the exec; NotFound when there is no such process. */
  process(execId: string): ShimProcess {
    if (!execId) return this.init;
    const p = this.execs.get(execId);
    if (!p) throw new TtrpcError(Code.NotFound, `exec ${execId} not found in container ${this.id}`);
    return p;
  }
}
