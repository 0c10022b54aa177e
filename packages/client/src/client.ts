// The typed client of tsruncd: one ttrpc connection to the daemon's socket, and containerd's
// services on it (containers, tasks, events; images and snapshots in images.ts and snapshots.ts),
// each call carrying the namespace as the `containerd-namespace` request metadata exactly as
// containerd's own clients send it.
//
// Requests are the generated protocol messages (any field may be left out); results are the
// response messages, unwrapped when a response holds a single field (containers.get returns
// the Container, tasks.list the Process list, tasks.start the pid). Errors are the daemon's
// TtrpcErrors with their codes untouched.

import {
  type Any,
  ContainersService,
  type containersapi,
  EventsService,
  type eventsapi,
  isAnyOf,
  type MessageInit,
  type OciLinuxResources,
  OciLinuxResourcesType,
  type OciProcess,
  OciProcessType,
  type OciSpec,
  OciSpecType,
  packAny,
  TasksService,
  type tasksapi,
  tasktypes,
  type types,
  unpackAnyAs,
} from "@tsrunc/protocol";
import { type CallOptions, Client, type ClientStub, Code, TtrpcError } from "@tsrunc/ttrpc";
import { DEFAULT_ADDRESS, DEFAULT_NAMESPACE } from "./defaults.js";
import { checkIdentifier } from "./identifiers.js";
import { ImagesApi } from "./images.js";
import { parseSignal } from "./signals.js";
import { SnapshotsApi } from "./snapshots.js";

export { DEFAULT_ADDRESS, DEFAULT_NAMESPACE } from "./defaults.js";
/** The request metadata key containerd reads the namespace from. */
export const NAMESPACE_METADATA_KEY = "containerd-namespace";
/** containerd's version service; tsruncd may offer it (Unimplemented otherwise). */
const VERSION_SERVICE = "containerd.services.version.v1.Version";

export interface ConnectOptions {
  /** Unix socket path or "unix://" address of tsruncd (default /run/tsrunc/tsruncd.sock). */
  address?: string;
  /** Namespace every call is made in (default "default"). */
  namespace?: string;
  /** Give up connecting after this long. */
  timeoutMs?: number;
}

/** What every call accepts. */
export interface CallOpts {
  /** Aborting fails the call with Canceled (or ends an event stream quietly). */
  signal?: AbortSignal;
  /** Deadline relative to now (DeadlineExceeded when it passes). */
  timeoutMs?: number;
}

export type Container = containersapi.Container;
export type Process = tasktypes.Process;
export type ProcessInfo = tasktypes.ProcessInfo;
export type Metric = types.Metric;
export type Envelope = eventsapi.Envelope;
export { tasktypes };

/** A container to create or update. `spec` may be a runtime-spec object (packed as containerd does). */
export interface ContainerInit {
  id: string;
  spec?: OciSpec | Any;
  runtime?: { name: string; options?: Any };
  labels?: Record<string, string>;
  image?: string;
  snapshotter?: string;
  snapshotKey?: string;
  extensions?: Record<string, Any>;
}

export type CreateTaskInit = MessageInit<tasksapi.CreateTaskRequest> & { containerId: string };
export type ExecInit = Omit<MessageInit<tasksapi.ExecProcessRequest>, "spec"> & {
  containerId: string;
  execId: string;
  /** The exec's process: a runtime-spec Process object, or an Any holding one. */
  spec: OciProcess | Any;
};
export interface KillInit {
  containerId: string;
  execId?: string;
  /** A number or a name ("SIGTERM", "KILL"); default SIGTERM, as ctr. */
  signal?: number | string;
  /** Signal every process of the container, not just its init. */
  all?: boolean;
}
export interface UpdateInit {
  containerId: string;
  resources?: OciLinuxResources | Any;
  annotations?: Record<string, string>;
}
export interface ProcessRef {
  containerId: string;
  execId?: string;
}

export interface SubscribeOptions {
  /** containerd filter expressions, e.g. `topic=="/tasks/exit"`; any one matching is enough. */
  filters?: string[];
  /** Aborting ends the iteration without an error. */
  signal?: AbortSignal;
}

/** True when `v` is a google.protobuf.Any rather than a plain object. */
export function isAny(v: unknown): v is Any {
  return (
    typeof v === "object" &&
    v !== null &&
    typeof (v as Any).typeUrl === "string" &&
    (v as Any).value instanceof Uint8Array
  );
}

/** The runtime-spec of a container, or undefined when it holds none (or another type). */
export function containerSpec(c: Pick<Container, "spec">): OciSpec | undefined {
  return isAnyOf(c.spec, OciSpecType) ? unpackAnyAs(c.spec!, OciSpecType) : undefined;
}

/** Turns a failed connect into the error a person can act on; keeps the original as cause. */
export function connectError(err: unknown, address: string): TtrpcError {
  const path = address.startsWith("unix://") ? address.slice("unix://".length) : address;
  const cause = err instanceof Error ? (err.cause as NodeJS.ErrnoException | undefined) : undefined;
  if (err instanceof TtrpcError && err.code === Code.InvalidArgument) {
    return new TtrpcError(
      Code.InvalidArgument,
      `invalid tsruncd address ${JSON.stringify(address)}: ${err.message}`,
      {
        cause: err,
      },
    );
  }
  if (cause?.code === "EACCES" || cause?.code === "EPERM") {
    return new TtrpcError(Code.PermissionDenied, `permission denied connecting to tsruncd at ${path}`, {
      cause: err,
    });
  }
  return new TtrpcError(Code.Unavailable, `cannot reach tsruncd at ${path}: is it running?`, { cause: err });
}

/** Opens a connection to tsruncd. */
export async function connect(opts: ConnectOptions = {}): Promise<TsruncClient> {
  const address = opts.address ?? DEFAULT_ADDRESS;
  const namespace = checkIdentifier(opts.namespace ?? DEFAULT_NAMESPACE, "namespace");
  let client: Client;
  try {
    client = await Client.connect(address, opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs });
  } catch (err) {
    throw connectError(err, address);
  }
  return new TsruncClient(client, address, namespace);
}

/** @internal How an API class turns a call's options into ttrpc's (the namespace header, the timeout). */
export type OptsFn = (o: CallOpts | undefined) => CallOptions;

function packSpec<T>(v: T | Any, type: typeof OciSpecType | typeof OciProcessType): Any {
  return isAny(v) ? v : packAny(type as never, v);
}

function containerMessage(c: ContainerInit): MessageInit<Container> {
  const { spec, ...rest } = c;
  return spec === undefined ? rest : { ...rest, spec: packSpec(spec, OciSpecType) };
}

/** containerd.services.containers.v1.Containers */
export class ContainersApi {
  readonly #stub: ClientStub<typeof ContainersService>;
  readonly #opts: OptsFn;

  /** @internal */
  constructor(client: Client, opts: OptsFn) {
    this.#stub = client.service(ContainersService);
    this.#opts = opts;
  }

  async create(container: ContainerInit, o?: CallOpts): Promise<Container> {
    const res = await this.#stub.create({ container: containerMessage(container) }, this.#opts(o));
    return res.container;
  }

  async get(id: string, o?: CallOpts): Promise<Container> {
    return (await this.#stub.get({ id }, this.#opts(o))).container;
  }

  /** Every container of the namespace, or those matching any of containerd's filters. */
  async list(filters: string[] = [], o?: CallOpts): Promise<Container[]> {
    return (await this.#stub.list({ filters }, this.#opts(o))).containers;
  }

  /** Replaces the fields named by `fieldPaths` (every updatable field when empty), as containerd. */
  async update(container: ContainerInit, fieldPaths: string[] = [], o?: CallOpts): Promise<Container> {
    const res = await this.#stub.update(
      {
        container: containerMessage(container),
        updateMask: fieldPaths.length > 0 ? { paths: fieldPaths } : undefined,
      },
      this.#opts(o),
    );
    return res.container;
  }

  async delete(id: string, o?: CallOpts): Promise<void> {
    await this.#stub.delete({ id }, this.#opts(o));
  }
}

/** containerd.services.tasks.v1.Tasks: tasks are addressed by container id (and exec id). */
export class TasksApi {
  readonly #stub: ClientStub<typeof TasksService>;
  readonly #opts: OptsFn;

  /** @internal */
  constructor(client: Client, opts: OptsFn) {
    this.#stub = client.service(TasksService);
    this.#opts = opts;
  }

  create(req: CreateTaskInit, o?: CallOpts): Promise<tasksapi.CreateTaskResponse> {
    return this.#stub.create(req, this.#opts(o));
  }

  /** Starts the task's init (or an exec); resolves to its pid. */
  async start(ref: ProcessRef, o?: CallOpts): Promise<number> {
    return (await this.#stub.start(ref, this.#opts(o))).pid;
  }

  /** Deletes a stopped task; the response holds its exit status. */
  delete(ref: { containerId: string }, o?: CallOpts): Promise<tasksapi.DeleteResponse> {
    return this.#stub.delete({ containerId: ref.containerId }, this.#opts(o));
  }

  deleteProcess(
    ref: { containerId: string; execId: string },
    o?: CallOpts,
  ): Promise<tasksapi.DeleteResponse> {
    return this.#stub.deleteProcess(ref, this.#opts(o));
  }

  async get(ref: ProcessRef, o?: CallOpts): Promise<Process> {
    const res = await this.#stub.get(ref, this.#opts(o));
    if (res.process === undefined) {
      throw new TtrpcError(
        Code.Internal,
        `tsruncd answered Tasks.Get for ${ref.containerId} without a process`,
      );
    }
    return res.process;
  }

  async list(filter = "", o?: CallOpts): Promise<Process[]> {
    return (await this.#stub.list({ filter }, this.#opts(o))).tasks;
  }

  async kill(req: KillInit, o?: CallOpts): Promise<void> {
    let signal: number;
    try {
      signal = parseSignal(req.signal ?? "SIGTERM");
    } catch (err) {
      throw new TtrpcError(Code.InvalidArgument, (err as Error).message);
    }
    await this.#stub.kill(
      { containerId: req.containerId, execId: req.execId ?? "", signal, all: req.all ?? false },
      this.#opts(o),
    );
  }

  async exec(req: ExecInit, o?: CallOpts): Promise<void> {
    await this.#stub.exec({ ...req, spec: packSpec(req.spec, OciProcessType) }, this.#opts(o));
  }

  async resizePty(req: ProcessRef & { width: number; height: number }, o?: CallOpts): Promise<void> {
    await this.#stub.resizePty(req, this.#opts(o));
  }

  /** Closes the process's stdin (the shim drops its hold on the fifo; EOF reaches the process). */
  async closeIO(req: ProcessRef & { stdin?: boolean }, o?: CallOpts): Promise<void> {
    await this.#stub.closeIO({ ...req, stdin: req.stdin ?? true }, this.#opts(o));
  }

  async pause(ref: { containerId: string }, o?: CallOpts): Promise<void> {
    await this.#stub.pause({ containerId: ref.containerId }, this.#opts(o));
  }

  async resume(ref: { containerId: string }, o?: CallOpts): Promise<void> {
    await this.#stub.resume({ containerId: ref.containerId }, this.#opts(o));
  }

  /** The task's processes (Tasks.ListPids). */
  async pids(ref: { containerId: string }, o?: CallOpts): Promise<ProcessInfo[]> {
    return (await this.#stub.listPids({ containerId: ref.containerId }, this.#opts(o))).processes;
  }

  async update(req: UpdateInit, o?: CallOpts): Promise<void> {
    const resources =
      req.resources === undefined
        ? undefined
        : isAny(req.resources)
          ? req.resources
          : packAny(OciLinuxResourcesType, req.resources);
    await this.#stub.update(
      { containerId: req.containerId, resources, annotations: req.annotations ?? {} },
      this.#opts(o),
    );
  }

  /** Metrics of the tasks matching containerd filters, e.g. [`id==web`]. */
  async metrics(filters: string[], o?: CallOpts): Promise<Metric[]> {
    return (await this.#stub.metrics({ filters }, this.#opts(o))).metrics;
  }

  async checkpoint(
    req: MessageInit<tasksapi.CheckpointTaskRequest> & { containerId: string },
    o?: CallOpts,
  ): Promise<types.Descriptor[]> {
    return (await this.#stub.checkpoint(req, this.#opts(o))).descriptors;
  }

  /** Resolves when the process has exited (start it only after calling wait, as ctr does). */
  wait(ref: ProcessRef, o?: CallOpts): Promise<tasksapi.WaitResponse> {
    return this.#stub.wait(ref, this.#opts(o));
  }
}

/** containerd.services.events.v1.Events */
export class EventsApi {
  readonly #stub: ClientStub<typeof EventsService>;
  readonly #opts: OptsFn;

  /** @internal */
  constructor(client: Client, opts: OptsFn) {
    this.#stub = client.service(EventsService);
    this.#opts = opts;
  }

  /** Envelopes as the daemon relays them, until `signal` aborts (no error then) or the daemon ends. */
  subscribe(opts: SubscribeOptions = {}): AsyncIterable<Envelope> {
    const stub = this.#stub;
    const callOpts = this.#opts;
    const { signal, filters = [] } = opts;
    return {
      async *[Symbol.asyncIterator]() {
        if (signal?.aborted) return;
        // Our own controller also ends the stream when the consumer stops early (break).
        const inner = new AbortController();
        const onAbort = () => inner.abort(signal?.reason);
        signal?.addEventListener("abort", onAbort, { once: true });
        try {
          for await (const env of stub.subscribe({ filters }, callOpts({ signal: inner.signal }))) {
            yield env;
          }
        } catch (err) {
          if (signal?.aborted) return;
          throw err;
        } finally {
          signal?.removeEventListener("abort", onAbort);
          inner.abort();
        }
      },
    };
  }

  /** Publishes an event under a topic (the daemon stamps namespace and time). */
  async publish(topic: string, event: Any, o?: CallOpts): Promise<void> {
    await this.#stub.publish({ topic, event }, this.#opts(o));
  }
}

export interface DaemonVersion {
  version: string;
  revision: string;
}

/** A connection to tsruncd, bound to one namespace. */
export class TsruncClient {
  readonly containers: ContainersApi;
  readonly tasks: TasksApi;
  readonly events: EventsApi;
  readonly images: ImagesApi;
  readonly snapshots: SnapshotsApi;
  readonly #client: Client;

  /** @internal use connect() */
  constructor(
    client: Client,
    readonly address: string,
    readonly namespace: string,
  ) {
    this.#client = client;
    const metadata = { [NAMESPACE_METADATA_KEY]: namespace };
    const opts: OptsFn = (o) => {
      const out: CallOptions = { metadata };
      if (o?.signal !== undefined) out.signal = o.signal;
      if (o?.timeoutMs !== undefined) out.timeoutMs = o.timeoutMs;
      return out;
    };
    this.containers = new ContainersApi(client, opts);
    this.tasks = new TasksApi(client, opts);
    this.events = new EventsApi(client, opts);
    this.images = new ImagesApi(client, opts);
    this.snapshots = new SnapshotsApi(client, opts);
  }

  /** The same connection, calling in another namespace. */
  withNamespace(namespace: string): TsruncClient {
    return new TsruncClient(this.#client, this.address, checkIdentifier(namespace, "namespace"));
  }

  /** The underlying ttrpc client, for services this library does not wrap. */
  get ttrpc(): Client {
    return this.#client;
  }

  get connected(): boolean {
    return this.#client.connected;
  }

  /** Called once when the connection ends (the daemon went away, or close()). */
  onClose(cb: (err: Error | undefined) => void): void {
    this.#client.onClose(cb);
  }

  /**
   * The daemon's version through containerd's Version service. Rejects with Unimplemented
   * when the daemon answers but has no such service.
   */
  async version(o?: CallOpts): Promise<DaemonVersion> {
    const opts: CallOptions = { metadata: { [NAMESPACE_METADATA_KEY]: this.namespace } };
    if (o?.signal !== undefined) opts.signal = o.signal;
    if (o?.timeoutMs !== undefined) opts.timeoutMs = o.timeoutMs;
    const bytes = await this.#client.call(VERSION_SERVICE, "Version", new Uint8Array(0), opts);
    return decodeVersionResponse(bytes);
  }

  /** Closes the connection (shared with every withNamespace() sibling). */
  close(): Promise<void> {
    return this.#client.close();
  }
}

/** VersionResponse {1 version string, 2 revision string}: small enough to read by hand. */
export function decodeVersionResponse(b: Uint8Array): DaemonVersion {
  const out: DaemonVersion = { version: "", revision: "" };
  const text = new TextDecoder();
  let pos = 0;
  const varint = (): number => {
    let v = 0;
    let shift = 0;
    for (;;) {
      if (pos >= b.length || shift > 28) throw new TtrpcError(Code.Internal, "bad VersionResponse");
      const byte = b[pos++]!;
      v |= (byte & 0x7f) << shift;
      if (byte < 0x80) return v >>> 0;
      shift += 7;
    }
  };
  while (pos < b.length) {
    const tag = varint();
    const wire = tag & 7;
    if (wire === 2) {
      const len = varint();
      if (pos + len > b.length) throw new TtrpcError(Code.Internal, "bad VersionResponse");
      const s = text.decode(b.subarray(pos, pos + len));
      pos += len;
      if (tag >>> 3 === 1) out.version = s;
      else if (tag >>> 3 === 2) out.revision = s;
    } else if (wire === 0) {
      varint();
    } else {
      throw new TtrpcError(Code.Internal, "bad VersionResponse");
    }
  }
  return out;
}
