// The shim manager: starts a shim per task with its `start` verb, keeps the connection, and
// deals with a shim that goes away. It is the only place that turns "a task row" into "a live
// shim" and back; the Tasks service relays the calls. See README.md (crash consistency) for the
// order of records and actions.
import { Any, events, packAny, type task, timestampFromDate, timestampNow } from "@tsrunc/protocol/shim";
import { writeShimBinaryPath } from "@tsrunc/shim-contract/bundle-files";
import {
  type LaunchOptions,
  launchShim,
  runShimDelete,
  type ShimConnection,
} from "@tsrunc/shim-contract/launcher";
import { resolveShimBinary } from "@tsrunc/shim-contract/runtime-name";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import type { Logger } from "pino";
import type { NetworkManager } from "../cni/network-manager.js";
import type { EventExchange } from "../events/exchange.js";
import { failpoint } from "../failpoint.js";
import { KeyedMutex } from "../keyed-mutex.js";
import type { MetadataStore, TaskRecord } from "../store/index.js";
import { bundleDir, createBundle, type LogRelay, relayShimLog, removeBundle } from "./bundle.js";
import { ShimTask } from "./shim-task.js";

export interface TaskManagerOptions {
  /** The daemon's volatile state directory (bundles under `<state>/<ns>/<id>`). */
  state: string;
  /** The daemon's ttrpc address: shims get it as -address (hashed into their socket path) and TTRPC_ADDRESS. */
  address: string;
  store: MetadataStore;
  exchange: EventExchange;
  log: Logger;
  /** Environment the shims start with (before TTRPC_ADDRESS/NAMESPACE are added). */
  shimEnv: NodeJS.ProcessEnv;
  debugShims?: boolean;
  /** Caps each deadline of a shim's creation: start, connect, Task.Create, the rollback's calls. */
  shimTimeoutMs?: number;
  /** CNI networks: attached between Task.Create and phase `created`, removed with the task. */
  network?: NetworkManager;
}

export interface CreateTaskInput {
  namespace: string;
  id: string;
  runtime: string;
  spec: Uint8Array;
  rootfs: task.CreateTaskRequest["rootfs"];
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
  /** The serialized Any given to `start` on stdin and to Task.Create. */
  options: { typeUrl: string; value: Uint8Array } | undefined;
}

/** Exit status containerd reports for a task whose shim was killed. */
const killedStatus = 128 + 9;

export class TaskManager {
  readonly #tasks = new Map<string, ShimTask>();
  readonly locks = new KeyedMutex();
  #closed = false;
  #locksQueued!: () => void;
  #booted!: () => void;
  /** Resolves once boot has queued its reconcile under every known container's lock. */
  readonly locksQueued = new Promise<void>((r) => {
    this.#locksQueued = r;
  });
  /** Resolves once boot has reconciled every container. */
  readonly booted = new Promise<void>((r) => {
    this.#booted = r;
  });

  constructor(readonly opts: TaskManagerOptions) {}

  /** A deadline of the create path, capped by shimTimeoutMs. */
  #deadline(ms: number): number {
    return Math.min(ms, this.opts.shimTimeoutMs ?? ms);
  }

  static key(namespace: string, id: string): string {
    return `${namespace}/${id}`;
  }

  get(namespace: string, id: string): ShimTask | undefined {
    return this.#tasks.get(TaskManager.key(namespace, id));
  }

  get liveCount(): number {
    return this.#tasks.size;
  }

  markLocksQueued(): void {
    this.#locksQueued();
  }

  markBooted(): void {
    this.#locksQueued();
    this.#booted();
  }

  /** Runs `fn` holding the container's lock. */
  serialize<T>(namespace: string, id: string, fn: () => Promise<T> | T): Promise<T> {
    return this.locks.run(TaskManager.key(namespace, id), fn);
  }

  invocation(namespace: string, id: string, bundle: string) {
    return {
      namespace,
      id,
      bundle,
      address: this.opts.address,
      ttrpcAddress: this.opts.address,
      publishBinary: process.execPath,
      debug: this.opts.debugShims ?? false,
    };
  }

  /** Tasks.Create: record → bundle → shim start → Task.Create. Caller holds the lock. */
  async create(input: CreateTaskInput): Promise<{ pid: number }> {
    const { store, state, log } = this.opts;
    const { namespace, id } = input;
    if (this.#closed) throw new TtrpcError(Code.Unavailable, "tsruncd is shutting down");
    const existing = store.findTask(namespace, id);
    if (existing) throw new TtrpcError(Code.AlreadyExists, `task ${JSON.stringify(id)}: already exists`);
    const binary = await resolveShimBinary(input.runtime, this.opts.shimEnv.PATH);
    // Networks are resolved (configurations loaded) before anything is made: a bad --net fails here.
    const netPlan = await this.opts.network?.plan(
      namespace,
      id,
      store.findContainer(namespace, id)?.labels ?? {},
    );
    const bundle = bundleDir(state, namespace, id);
    const now = new Date();
    const record: TaskRecord = {
      namespace,
      id,
      phase: "creating",
      bundle,
      shimBinary: binary,
      address: "",
      pid: 0,
      exitStatus: 0,
      stdin: input.stdin,
      stdout: input.stdout,
      stderr: input.stderr,
      terminal: input.terminal,
      updatedAt: now,
      ...(input.options ? { runtimeOptions: anyBytes(input.options) } : {}),
    };
    // Recorded before anything exists outside the database: a crash from here on is found at boot.
    store.putTask(record);
    failpoint("create:recorded");
    let conn: ShimConnection | undefined;
    let openRelay: LogRelay | undefined;
    const tlog = log.child({ namespace, id });
    try {
      // Where a create spends its time, in the "task created" log line (bench-daemon reads it).
      const timings: Record<string, number> = {};
      const t0 = performance.now();
      await createBundle(bundle, input.spec, true);
      await writeShimBinaryPath(bundle, binary);
      failpoint("create:bundle");
      const relay = relayShimLog(bundle, tlog);
      openRelay = relay;
      const launch: LaunchOptions = {
        ...this.invocation(namespace, id, bundle),
        binary,
        env: this.opts.shimEnv,
        startTimeoutMs: this.#deadline(10_000),
        connectTimeoutMs: this.#deadline(10_000),
        ...(input.options ? { options: anyBytes(input.options) } : {}),
      };
      const t1 = performance.now();
      try {
        conn = await launchShim(launch);
        timings.bundleMs = Math.round(t1 - t0);
        timings.shimStartMs = Math.round(performance.now() - t1);
      } catch (err) {
        relay.close();
        throw err;
      }
      store.updateTask(namespace, id, { address: conn.address, updatedAt: new Date() });
      failpoint("create:shim-started");
      const shimTask = new ShimTask(namespace, id, bundle, binary, conn, relay);
      const t2 = performance.now();
      const res = await conn.task.create(
        {
          id,
          bundle,
          rootfs: input.rootfs,
          terminal: input.terminal,
          stdin: input.stdin,
          stdout: input.stdout,
          stderr: input.stderr,
          ...(input.options ? { options: input.options } : {}),
        },
        { timeoutMs: this.#deadline(60_000) },
      );
      failpoint("create:task-created");
      if (netPlan && this.opts.network) {
        const tn = performance.now();
        // ctr's order: the task exists (its init holds the netns), not yet started.
        await this.opts.network.attach(namespace, id, res.pid, netPlan);
        timings.networkMs = Math.round(performance.now() - tn);
        failpoint("create:network-attached");
      }
      store.updateTask(namespace, id, { phase: "created", pid: res.pid, updatedAt: new Date() });
      failpoint("create:recorded-created");
      this.#adopt(shimTask);
      timings.createMs = Math.round(performance.now() - t2);
      tlog.info({ pid: res.pid, shim: binary, ...timings }, "task created");
      return { pid: res.pid };
    } catch (err) {
      tlog.warn({ err: (err as Error).message }, "task create failed; rolling back");
      await this.#rollback(namespace, id, bundle, binary, conn);
      // A shim that never opened the log fifo leaves the relay waiting for a writer: close it.
      openRelay?.close();
      throw shimError(err, binary);
    }
  }

  /** Undoes a create that did not finish: shim gone, bundle gone, row gone. */
  async #rollback(
    namespace: string,
    id: string,
    bundle: string,
    binary: string,
    conn: ShimConnection | undefined,
  ): Promise<void> {
    if (conn) {
      await conn.task.delete({ id }, { timeoutMs: this.#deadline(10_000) }).catch(() => {});
      await conn.task.shutdown({ id, now: true }, { timeoutMs: this.#deadline(5_000) }).catch(() => {});
      await conn.close().catch(() => {});
    }
    await runShimDelete({
      ...this.invocation(namespace, id, bundle),
      binary,
      env: this.opts.shimEnv,
      timeoutMs: this.#deadline(5_000),
    }).catch(() => {});
    await removeBundle(bundle).catch(() => {});
    this.opts.store.deleteTask(namespace, id);
    // attach removes what it added when it fails; this catches a failure after attach.
    await this.opts.network?.detach(namespace, id);
  }

  /** Starts watching a connected shim; a connection that ends without our asking is a lost shim. */
  #adopt(t: ShimTask): void {
    this.#tasks.set(TaskManager.key(t.namespace, t.id), t);
    t.conn.client.onClose(() => {
      if (t.closing || this.#closed) return;
      void this.serialize(t.namespace, t.id, () => this.#shimLost(t));
    });
  }

  adopt(t: ShimTask): void {
    // Boot reattaching after the daemon began to stop: leave the shim alone, drop our end.
    if (this.#closed) void t.close();
    else this.#adopt(t);
  }

  /** A shim that died: its `delete` verb cleans up, the exit is recorded and published. */
  async #shimLost(t: ShimTask): Promise<void> {
    const tlog = this.opts.log.child({ namespace: t.namespace, id: t.id });
    if (this.#tasks.get(TaskManager.key(t.namespace, t.id)) === t)
      this.#tasks.delete(TaskManager.key(t.namespace, t.id));
    t.logRelay.close();
    tlog.warn("shim connection lost; cleaning up with the shim's delete");
    await this.recordDeadShim(t.namespace, t.id, t.bundle, t.binary);
    t.markLostHandled();
  }

  /**
   * For a shim that no longer answers: run its `delete`, remove the bundle, keep the task row as
   * stopped with the exit (137 when the shim cannot say), publish /tasks/exit. A row that was
   * still being created or deleted is dropped instead.
   */
  async recordDeadShim(
    namespace: string,
    id: string,
    bundle: string,
    binary: string | undefined,
  ): Promise<void> {
    const { store, log } = this.opts;
    const tlog = log.child({ namespace, id });
    let pid = store.findTask(namespace, id)?.pid ?? 0;
    let exitStatus = killedStatus;
    let exitedAt = new Date();
    if (binary) {
      try {
        const res = await runShimDelete({
          ...this.invocation(namespace, id, bundle),
          binary,
          env: this.opts.shimEnv,
        });
        pid = res.pid || pid;
        exitStatus = res.exitStatus;
        const ms = res.exitedAt
          ? Number(res.exitedAt.seconds) * 1000 + Math.floor(res.exitedAt.nanos / 1e6)
          : 0;
        if (ms > 0) exitedAt = new Date(ms);
      } catch (err) {
        tlog.warn({ err: (err as Error).message }, "shim delete failed");
      }
    }
    await removeBundle(bundle).catch((err) =>
      tlog.warn({ err: (err as Error).message }, "bundle removal failed"),
    );
    // The task is gone: so are its networks (a failure is kept and retried at boot).
    await this.opts.network?.detach(namespace, id);
    const row = store.findTask(namespace, id);
    if (!row) return;
    if (row.phase === "creating" || row.phase === "deleting" || !store.findContainer(namespace, id)) {
      store.deleteTask(namespace, id);
      tlog.info({ phase: row.phase }, "dropped the record of an unfinished task");
      return;
    }
    if (row.phase === "stopped") return;
    store.updateTask(namespace, id, {
      phase: "stopped",
      exitStatus,
      exitedAt,
      address: "",
      updatedAt: new Date(),
    });
    this.publishExit(namespace, id, pid, exitStatus, exitedAt);
    tlog.info({ exitStatus }, "task recorded as stopped");
  }

  publishExit(namespace: string, id: string, pid: number, exitStatus: number, exitedAt: Date): void {
    this.opts.exchange.publish({
      timestamp: timestampNow(),
      namespace,
      topic: "/tasks/exit",
      event: packAny(events.TaskExit, {
        containerId: id,
        id,
        pid,
        exitStatus,
        exitedAt: timestampFromDate(exitedAt),
      }),
    });
  }

  /** Tasks.Delete of the init: shim Delete → Shutdown → bundle removed → row removed. Caller holds the lock. */
  async delete(namespace: string, id: string): Promise<{ pid: number; exitStatus: number; exitedAt: Date }> {
    const { store } = this.opts;
    const row = store.findTask(namespace, id);
    if (!row) throw new TtrpcError(Code.NotFound, `task ${JSON.stringify(id)}: not found`);
    const t = this.get(namespace, id);
    if (!t) {
      // The shim is gone and its exit recorded: deleting the task forgets the record (and
      // retries a network teardown that failed when the shim died).
      await this.opts.network?.detach(namespace, id);
      store.deleteTask(namespace, id);
      return { pid: row.pid, exitStatus: row.exitStatus, exitedAt: row.exitedAt ?? new Date(0) };
    }
    // Intent first: a crash after the shim's Delete finds "deleting" and finishes the teardown.
    store.updateTask(namespace, id, { phase: "deleting", updatedAt: new Date() });
    failpoint("delete:recorded");
    let res: Awaited<ReturnType<typeof t.task.delete>>;
    try {
      res = await t.task.delete({ id }, { timeoutMs: 30_000 });
    } catch (err) {
      store.updateTask(namespace, id, { phase: row.phase, updatedAt: new Date() });
      throw err;
    }
    failpoint("delete:shim-deleted");
    t.closing = true;
    await t.task.shutdown({ id }, { timeoutMs: 5_000 }).catch(() => {});
    await t.close();
    this.#tasks.delete(TaskManager.key(namespace, id));
    await removeBundle(t.bundle);
    store.deleteTask(namespace, id);
    await this.opts.network?.detach(namespace, id);
    const ms = res.exitedAt ? Number(res.exitedAt.seconds) * 1000 + Math.floor(res.exitedAt.nanos / 1e6) : 0;
    return { pid: res.pid, exitStatus: res.exitStatus, exitedAt: new Date(ms) };
  }

  /** Daemon shutdown: close every connection and leave every shim and container running. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#tasks.values()].map((t) => t.close()));
    this.#tasks.clear();
  }
}

/**
 * An error of a shim's create as the client gets it: naming the shim, and never Unavailable,
 * which a client takes for "tsruncd is gone" (containerd answers Unknown here too).
 */
function shimError(err: unknown, binary: string): unknown {
  if (!(err instanceof TtrpcError) || err.message.includes(binary)) return err;
  const code = err.code === Code.Unavailable ? Code.Unknown : err.code;
  return new TtrpcError(code, `shim ${binary}: ${err.message}`, { cause: err });
}

function anyBytes(a: { typeUrl: string; value: Uint8Array }): Uint8Array {
  return Any.encode(a);
}
