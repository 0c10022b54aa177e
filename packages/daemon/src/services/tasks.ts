// containerd.services.tasks.v1.Tasks, transport-free: each method takes the namespace and the
// decoded request and relays to the container's shim. Calls for one container are serialized
// (the TaskManager's per-container lock); Wait is not, beyond looking the task up, so that a
// waiter never holds back a Kill. A task whose shim is gone answers from its record.
import type { tasksapi } from "@tsrunc/protocol/daemon";
import { OciSpecType, type tasktypes, timestampFromDate, timestampNow } from "@tsrunc/protocol/shim";
import { checkIdentifier } from "@tsrunc/shim-contract/check-identifier";
import { Code, isCode, TtrpcError } from "@tsrunc/ttrpc";
import { failpoint } from "../failpoint.js";
import type { TaskManager } from "../runtime/task-manager.js";
import type { MetadataStore, TaskRecord } from "../store/index.js";
import { Status } from "./task-status.js";

export interface CallScope {
  namespace: string;
  signal?: AbortSignal;
}

export class TasksApi {
  constructor(
    private readonly store: MetadataStore,
    private readonly manager: TaskManager,
  ) {}

  async create(s: CallScope, req: tasksapi.CreateTaskRequest): Promise<tasksapi.CreateTaskResponse> {
    const id = checkIdentifier(req.containerId, "container id");
    if (req.checkpoint?.digest)
      throw new TtrpcError(Code.Unimplemented, "restoring a task from a checkpoint is not supported");
    await this.manager.locksQueued;
    return this.manager.serialize(s.namespace, id, async () => {
      const container = this.store.getContainer(s.namespace, id);
      if (!container.spec || container.spec.typeUrl !== OciSpecType.typeUrl)
        throw new TtrpcError(Code.FailedPrecondition, `container ${JSON.stringify(id)} has no OCI spec`);
      const options = req.options?.typeUrl ? req.options : container.runtime.options;
      const { pid } = await this.manager.create({
        namespace: s.namespace,
        id,
        runtime: req.runtimePath || container.runtime.name,
        spec: container.spec.value,
        rootfs: req.rootfs,
        stdin: req.stdin,
        stdout: req.stdout,
        stderr: req.stderr,
        terminal: req.terminal,
        options: options?.typeUrl ? { typeUrl: options.typeUrl, value: options.value } : undefined,
      });
      return { containerId: id, pid };
    });
  }

  async start(s: CallScope, req: tasksapi.StartRequest): Promise<tasksapi.StartResponse> {
    return this.#withShim(s, req.containerId, async (t, id) => {
      const res = await t.task.start({ id, execId: req.execId }, { timeoutMs: 60_000 });
      failpoint("start:started");
      if (!req.execId)
        this.store.updateTask(s.namespace, id, { phase: "running", pid: res.pid, updatedAt: new Date() });
      return { pid: res.pid };
    });
  }

  async delete(s: CallScope, req: tasksapi.DeleteTaskRequest): Promise<tasksapi.DeleteResponse> {
    const id = checkIdentifier(req.containerId, "container id");
    await this.manager.locksQueued;
    return this.manager.serialize(s.namespace, id, async () => {
      const r = await this.manager.delete(s.namespace, id);
      return { id, pid: r.pid, exitStatus: r.exitStatus, exitedAt: timestampFromDate(r.exitedAt) };
    });
  }

  async deleteProcess(s: CallScope, req: tasksapi.DeleteProcessRequest): Promise<tasksapi.DeleteResponse> {
    if (!req.execId)
      throw new TtrpcError(Code.InvalidArgument, "exec id is required (use Delete for the task)");
    return this.#withShim(s, req.containerId, async (t, id) => {
      const r = await t.task.delete(
        { id, execId: checkIdentifier(req.execId, "exec id") },
        { timeoutMs: 30_000 },
      );
      return { id: req.execId, pid: r.pid, exitStatus: r.exitStatus, exitedAt: r.exitedAt };
    });
  }

  async get(s: CallScope, req: tasksapi.GetRequest): Promise<tasksapi.GetResponse> {
    const id = checkIdentifier(req.containerId, "container id");
    await this.#settled(s.namespace, id);
    const row = this.store.findTask(s.namespace, id);
    if (!row) throw new TtrpcError(Code.NotFound, `task ${JSON.stringify(id)}: not found`);
    return { process: await this.#process(row, req.execId, s.signal) };
  }

  async list(s: CallScope, _req: tasksapi.ListTasksRequest): Promise<tasksapi.ListTasksResponse> {
    await this.manager.booted;
    const rows = this.store
      .listTasks(s.namespace)
      .filter((r) => r.phase !== "creating" && r.phase !== "deleting");
    // One shim that does not answer is listed UNKNOWN from its record: it must not fail the
    // list of every other container of the namespace (containerd's fails with it).
    const tasks = await Promise.all(rows.map((r) => this.#process(r, "", s.signal, true)));
    return { tasks };
  }

  /**
   * A task's process as the shim reports it now, or as recorded when the shim is gone (or, with
   * `lenient`, does not answer State).
   */
  async #process(
    row: TaskRecord,
    execId: string,
    signal?: AbortSignal,
    lenient = false,
  ): Promise<tasktypes.Process> {
    const t = this.manager.get(row.namespace, row.id);
    if (t) {
      try {
        const st = await t.task.state(
          { id: row.id, execId },
          { timeoutMs: 5_000, ...(signal ? { signal } : {}) },
        );
        return {
          containerId: row.id,
          id: execId || row.id,
          pid: st.pid,
          status: st.status,
          stdin: st.stdin,
          stdout: st.stdout,
          stderr: st.stderr,
          terminal: st.terminal,
          exitStatus: st.exitStatus,
          exitedAt: st.exitedAt,
        };
      } catch (err) {
        if (execId || signal?.aborted || !(lenient || isCode(err, Code.Unavailable))) throw err;
      }
    } else if (execId) {
      throw new TtrpcError(Code.NotFound, `process ${JSON.stringify(execId)}: not found`);
    }
    return {
      containerId: row.id,
      id: row.id,
      pid: row.pid,
      status: row.phase === "stopped" ? Status.STOPPED : Status.UNKNOWN,
      stdin: row.stdin,
      stdout: row.stdout,
      stderr: row.stderr,
      terminal: row.terminal,
      exitStatus: row.exitStatus,
      exitedAt: timestampFromDate(row.exitedAt ?? new Date(0)),
    };
  }

  async kill(s: CallScope, req: tasksapi.KillRequest): Promise<void> {
    await this.#withShim(s, req.containerId, (t, id) =>
      t.task.kill({ id, execId: req.execId, signal: req.signal, all: req.all }, { timeoutMs: 10_000 }),
    );
  }

  async exec(s: CallScope, req: tasksapi.ExecProcessRequest): Promise<void> {
    const execId = checkIdentifier(req.execId, "exec id");
    await this.#withShim(s, req.containerId, (t, id) =>
      t.task.exec(
        {
          id,
          execId,
          terminal: req.terminal,
          stdin: req.stdin,
          stdout: req.stdout,
          stderr: req.stderr,
          ...(req.spec ? { spec: req.spec } : {}),
        },
        { timeoutMs: 30_000 },
      ),
    );
  }

  async resizePty(s: CallScope, req: tasksapi.ResizePtyRequest): Promise<void> {
    await this.#withShim(s, req.containerId, (t, id) =>
      t.task.resizePty(
        { id, execId: req.execId, width: req.width, height: req.height },
        { timeoutMs: 5_000 },
      ),
    );
  }

  async closeIO(s: CallScope, req: tasksapi.CloseIORequest): Promise<void> {
    await this.#withShim(s, req.containerId, (t, id) =>
      t.task.closeIO({ id, execId: req.execId, stdin: req.stdin }, { timeoutMs: 5_000 }),
    );
  }

  async pause(s: CallScope, req: tasksapi.PauseTaskRequest): Promise<void> {
    await this.#withShim(s, req.containerId, async (t, id) => {
      await t.task.pause({ id }, { timeoutMs: 30_000 });
      this.store.updateTask(s.namespace, id, { phase: "paused", updatedAt: new Date() });
    });
  }

  async resume(s: CallScope, req: tasksapi.ResumeTaskRequest): Promise<void> {
    await this.#withShim(s, req.containerId, async (t, id) => {
      await t.task.resume({ id }, { timeoutMs: 30_000 });
      this.store.updateTask(s.namespace, id, { phase: "running", updatedAt: new Date() });
    });
  }

  async listPids(s: CallScope, req: tasksapi.ListPidsRequest): Promise<tasksapi.ListPidsResponse> {
    return this.#withShim(s, req.containerId, async (t, id) => {
      const r = await t.task.pids({ id }, { timeoutMs: 10_000 });
      return { processes: r.processes };
    });
  }

  async checkpoint(
    s: CallScope,
    req: tasksapi.CheckpointTaskRequest,
  ): Promise<tasksapi.CheckpointTaskResponse> {
    return this.#withShim(s, req.containerId, async (t, id) => {
      const path = `${this.manager.opts.state}/.checkpoints/${s.namespace}-${id}-${Date.now()}`;
      await t.task.checkpoint(
        { id, path, ...(req.options ? { options: req.options } : {}) },
        { timeoutMs: 120_000 },
      );
      return { descriptors: [] };
    });
  }

  async update(s: CallScope, req: tasksapi.UpdateTaskRequest): Promise<void> {
    await this.#withShim(s, req.containerId, (t, id) =>
      t.task.update(
        { id, annotations: req.annotations, ...(req.resources ? { resources: req.resources } : {}) },
        { timeoutMs: 30_000 },
      ),
    );
  }

  async metrics(s: CallScope, req: tasksapi.MetricsRequest): Promise<tasksapi.MetricsResponse> {
    await this.manager.booted;
    const ids = new Set(
      req.filters
        .map((f) => /^id==(.+)$/.exec(f.trim())?.[1]?.replace(/^"|"$/g, ""))
        .filter((v): v is string => v !== undefined),
    );
    const rows = this.store
      .listTasks(s.namespace)
      .filter((r) => (ids.size === 0 || ids.has(r.id)) && this.manager.get(r.namespace, r.id));
    const metrics = await Promise.all(
      rows.map(async (r) => {
        const t = this.manager.get(r.namespace, r.id);
        if (!t) return undefined;
        const st = await t.task.stats({ id: r.id }, { timeoutMs: 10_000 }).catch(() => undefined);
        return st
          ? { timestamp: timestampNow(), id: r.id, ...(st.stats ? { data: st.stats } : {}) }
          : undefined;
      }),
    );
    return { metrics: metrics.filter((m) => m !== undefined) };
  }

  async wait(s: CallScope, req: tasksapi.WaitRequest): Promise<tasksapi.WaitResponse> {
    const id = checkIdentifier(req.containerId, "container id");
    await this.#settled(s.namespace, id);
    const row = this.store.findTask(s.namespace, id);
    if (!row) throw new TtrpcError(Code.NotFound, `task ${JSON.stringify(id)}: not found`);
    const t = this.manager.get(s.namespace, id);
    if (!t) {
      if (req.execId) throw new TtrpcError(Code.NotFound, `process ${JSON.stringify(req.execId)}: not found`);
      return { exitStatus: row.exitStatus, exitedAt: timestampFromDate(row.exitedAt ?? new Date(0)) };
    }
    try {
      const r = await t.task.wait({ id, execId: req.execId }, s.signal ? { signal: s.signal } : {});
      return { exitStatus: r.exitStatus, exitedAt: r.exitedAt };
    } catch (err) {
      // The shim went away while we waited: its exit is what the daemon records for it.
      if (req.execId || !isCode(err, Code.Unavailable) || t.closing) throw err;
      await t.lostHandled;
      const after = this.store.findTask(s.namespace, id);
      if (!after) throw err;
      return { exitStatus: after.exitStatus, exitedAt: timestampFromDate(after.exitedAt ?? new Date(0)) };
    }
  }

  /** Waits until no earlier call (nor boot's reconcile) is working on the container. */
  async #settled(namespace: string, id: string): Promise<void> {
    await this.manager.locksQueued;
    await this.manager.serialize(namespace, id, () => {});
  }

  async #withShim<T>(
    s: CallScope,
    containerId: string,
    fn: (t: NonNullable<ReturnType<TaskManager["get"]>>, id: string) => Promise<T>,
  ): Promise<T> {
    const id = checkIdentifier(containerId, "container id");
    await this.manager.locksQueued;
    return this.manager.serialize(s.namespace, id, async () => {
      const t = this.manager.get(s.namespace, id);
      if (!t) {
        const row = this.store.findTask(s.namespace, id);
        if (!row) throw new TtrpcError(Code.NotFound, `task ${JSON.stringify(id)}: not found`);
        throw new TtrpcError(
          Code.FailedPrecondition,
          `task ${JSON.stringify(id)} is stopped (its shim is gone)`,
        );
      }
      return fn(t, id);
    });
  }
}
