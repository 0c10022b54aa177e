// The containerd.task.v2.Task service: validates each request, finds the container and process
// it names, and delegates. Whether the process's state allows the request is decided by the
// process (process/process-state-table.ts). What this shim cannot do (yet) answers Unimplemented.
import { lstatSync, type Stats } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import {
  GO_ZERO_TIME,
  isAnyOf,
  type OciProcess,
  OciProcessType,
  packAny,
  runcoptions,
  type TaskService,
  task,
  tasktypes,
  timestampFromDate,
  unpackAnyAs,
} from "@tsrunc/protocol/shim";
import { BundleFile } from "@tsrunc/shim-contract/bundle-files";
import { identifierProblem } from "@tsrunc/shim-contract/identifiers";
import { runcRootFor } from "@tsrunc/shim-contract/roots";
import { Code, type ServiceImpl, TtrpcError } from "@tsrunc/ttrpc";
import { Container } from "./container.js";
import type { MountSpec } from "./mount.js";
import { checkpointOptions } from "./ops/checkpoint.js";
import { resourcesJson } from "./ops/update.js";
import { ExecProcess } from "./process/exec-process.js";
import { InitProcess } from "./process/init-process.js";
import type { ExitInfo, Status } from "./process/process-state.js";
import { Runc } from "./runc/index.js";
import { runcOptionsFromAny } from "./runtime-options.js";
import type { RuncDriver, ShimContext } from "./shim-context.js";

import { shimVersion } from "./version.js";

export interface TaskServiceOptions {
  /** Runtime options from `start`'s stdin, used when Create carries none. */
  defaultOptions?: runcoptions.Options;
  /** Called when Shutdown finds no container left: the process should exit. */
  onShutdown: () => void;
}

const statusCodes: Record<Status, tasktypes.Status> = {
  created: tasktypes.Status.CREATED,
  running: tasktypes.Status.RUNNING,
  paused: tasktypes.Status.PAUSED,
  stopped: tasktypes.Status.STOPPED,
  deleted: tasktypes.Status.STOPPED,
};

function checkId(id: string, what = "id"): void {
  const problem = identifierProblem(id);
  if (problem) throw new TtrpcError(Code.InvalidArgument, `invalid ${what}: ${problem}`);
}

function exitFields(exit: ExitInfo | undefined) {
  return exit
    ? { exitStatus: exit.status, exitedAt: timestampFromDate(exit.exitedAt) }
    : { exitStatus: 0, exitedAt: GO_ZERO_TIME };
}

export class TaskServiceImpl {
  readonly containers = new Map<string, Container>();
  /** Creates in flight, so that two Creates of one id cannot race. */
  readonly #creating = new Set<string>();

  constructor(
    private readonly ctx: ShimContext,
    private readonly opts: TaskServiceOptions,
  ) {}

  container(id: string): Container {
    checkId(id);
    const c = this.containers.get(id);
    if (!c) throw new TtrpcError(Code.NotFound, `container ${id} not found`);
    return c;
  }

  /** The bundle must be the shim's own or a sibling named after the container (containerd's layout). */
  #checkBundle(id: string, bundle: string): string {
    if (!bundle || bundle.includes("\0") || !bundle.startsWith("/")) {
      throw new TtrpcError(Code.InvalidArgument, "bundle must be an absolute path");
    }
    // containerd's layout: every container's bundle is <state>/<namespace>/<id>, the shim's own
    // among them. So the bundle must be named after the container (two containers can never
    // share one bundle: found by the fuzz campaign, an id "gz" created in the shim's bundle "fz")
    // and sit beside the shim's.
    const abs = resolve(bundle);
    if (dirname(abs) !== dirname(this.ctx.shimBundle) || basename(abs) !== id) {
      throw new TtrpcError(
        Code.InvalidArgument,
        `bundle ${bundle} must be ${join(dirname(this.ctx.shimBundle), id)} (this shim's bundle directory)`,
      );
    }
    // containerd makes the bundle before Create. A symlink in its place would have the shim write
    // its options file and mount the rootfs wherever the link points.
    let st: Stats;
    try {
      st = lstatSync(abs);
    } catch {
      throw new TtrpcError(Code.NotFound, `bundle ${bundle} does not exist`);
    }
    if (!st.isDirectory()) throw new TtrpcError(Code.InvalidArgument, `bundle ${bundle} is not a directory`);
    return abs;
  }

  #runtimeOptions(any: task.CreateTaskRequest["options"]): runcoptions.Options | undefined {
    // runc's Options, or the CRI plugin's generic ones for a runtime type not io.containerd.runc.*
    return runcOptionsFromAny(any) ?? this.opts.defaultOptions;
  }

  #runcRoot(namespace: string, o: runcoptions.Options | undefined): string {
    // The options' Root gets the namespace appended, as the Go shim does (Root/<namespace>).
    const root = o?.root ? join(o.root, namespace) : runcRootFor(namespace);
    if (!root.startsWith("/") || root.includes("\0"))
      throw new TtrpcError(Code.InvalidArgument, "runc root must be absolute");
    return root;
  }

  #runcFor(root: string, o: runcoptions.Options | undefined, bundle: string): RuncDriver {
    const options = {
      binary: o?.binaryName || "runc",
      root,
      systemdCgroup: o?.systemdCgroup ?? false,
      criu: o?.criuPath || undefined,
      tmpDir: bundle,
    };
    return this.ctx.makeRunc ? this.ctx.makeRunc(options) : new Runc(options);
  }

  async create(req: task.CreateTaskRequest): Promise<task.CreateTaskResponse> {
    checkId(req.id);
    const bundle = this.#checkBundle(req.id, req.bundle);
    if (this.containers.has(req.id) || this.#creating.has(req.id)) {
      throw new TtrpcError(Code.AlreadyExists, `container ${req.id} already exists`);
    }
    if (req.checkpoint || req.parentCheckpoint)
      throw new TtrpcError(Code.Unimplemented, "restore is not supported yet");
    const options = this.#runtimeOptions(req.options);
    const root = this.#runcRoot(this.ctx.namespace, options);
    const runc = this.#runcFor(root, options, bundle);
    this.#creating.add(req.id);
    try {
      // `delete` runs after a crash without our memory: it finds runc's root and binary here.
      await mkdir(bundle, { recursive: true });
      await writeFile(
        join(bundle, BundleFile.runcOptions),
        JSON.stringify({ binary: options?.binaryName || "runc", root }),
      );
      const rootfs: MountSpec[] = req.rootfs.map((m) => ({
        type: m.type,
        source: m.source,
        target: m.target,
        options: m.options,
      }));
      const init = await InitProcess.create(this.ctx, {
        id: req.id,
        bundle,
        rootfs,
        stdio: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
        runc,
        noPivotRoot: options?.noPivotRoot,
        noNewKeyring: options?.noNewKeyring,
      });
      this.containers.set(req.id, new Container(init));
      return { pid: init.pid };
    } finally {
      this.#creating.delete(req.id);
    }
  }

  async start(req: task.StartRequest): Promise<task.StartResponse> {
    const c = this.container(req.id);
    if (req.execId) checkId(req.execId, "exec id");
    return { pid: await c.process(req.execId).start() };
  }

  async state(req: task.StateRequest): Promise<task.StateResponse> {
    const c = this.container(req.id);
    const p = c.process(req.execId);
    p.check("state");
    return {
      id: p.eventId,
      bundle: c.bundle,
      pid: p.pid,
      status: statusCodes[p.state.status],
      stdin: p.stdio.stdin,
      stdout: p.stdio.stdout,
      stderr: p.stdio.stderr,
      terminal: p.stdio.terminal,
      execId: req.execId,
      ...exitFields(p.state.exit),
    };
  }

  async delete(req: task.DeleteRequest): Promise<task.DeleteResponse> {
    const c = this.container(req.id);
    const p = c.process(req.execId);
    const r = await p.delete();
    const res = { pid: r.pid, exitStatus: r.status, exitedAt: timestampFromDate(r.exitedAt) };
    if (req.execId) c.execs.delete(req.execId);
    else {
      this.containers.delete(req.id);
      // containerd runs our `delete` verb after the shim exits even when all went well; this
      // lets it answer at once instead of repeating runc delete and the unmount (cli/delete.ts).
      await writeFile(join(c.bundle, BundleFile.deleted), task.DeleteResponse.encode(res)).catch(() => {});
    }
    return res;
  }

  async kill(req: task.KillRequest): Promise<void> {
    const c = this.container(req.id);
    if (req.signal <= 0 || req.signal > 64)
      throw new TtrpcError(Code.InvalidArgument, `invalid signal ${req.signal}`);
    await c.process(req.execId).kill(req.signal, req.all);
  }

  async wait(req: task.WaitRequest, signal: AbortSignal): Promise<task.WaitResponse> {
    const p = this.container(req.id).process(req.execId);
    p.check("wait");
    const exit = await p.state.wait(signal);
    return { exitStatus: exit.status, exitedAt: timestampFromDate(exit.exitedAt) };
  }

  async pids(req: task.PidsRequest): Promise<task.PidsResponse> {
    const c = this.container(req.id);
    c.init.check("pids");
    if (c.init.state.status === "stopped") return { processes: [] };
    let pids: number[];
    try {
      pids = await c.init.runc.ps(c.id);
    } catch (err) {
      throw new TtrpcError(Code.Unknown, `pids: ${(err as Error).message}`);
    }
    // containerd shows which exec a pid belongs to through runc's ProcessDetails.
    const execOf = new Map([...c.execs.values()].map((p) => [p.pid, p.execId]));
    return {
      processes: pids.map((pid) => {
        const execId = execOf.get(pid);
        return execId ? { pid, info: packAny(runcoptions.ProcessDetails, { execId }) } : { pid };
      }),
    };
  }

  async exec(req: task.ExecProcessRequest): Promise<void> {
    const c = this.container(req.id);
    checkId(req.execId, "exec id");
    if (c.execs.has(req.execId))
      throw new TtrpcError(Code.AlreadyExists, `exec ${req.execId} already exists`);
    c.init.check("exec");
    if (!req.spec || !isAnyOf(req.spec, OciProcessType)) {
      throw new TtrpcError(Code.InvalidArgument, "exec spec must be a runtime-spec Process");
    }
    let spec: OciProcess;
    try {
      spec = unpackAnyAs(req.spec, OciProcessType);
    } catch (err) {
      throw new TtrpcError(Code.InvalidArgument, `bad exec spec: ${(err as Error).message}`);
    }
    if (!spec || typeof spec !== "object" || !Array.isArray(spec.args) || spec.args.length === 0) {
      throw new TtrpcError(Code.InvalidArgument, "exec spec needs args");
    }
    try {
      // Start hands the spec to runc as JSON: one nested too deeply for that is refused here.
      JSON.stringify(spec);
    } catch {
      throw new TtrpcError(Code.InvalidArgument, "exec spec is nested too deeply to pass to runc");
    }
    const stdio = { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal };
    c.execs.set(req.execId, new ExecProcess(this.ctx, c.init, req.execId, stdio, spec));
  }

  async pause(req: task.PauseRequest): Promise<void> {
    await this.container(req.id).init.pause();
  }

  async resume(req: task.ResumeRequest): Promise<void> {
    await this.container(req.id).init.resume();
  }

  async update(req: task.UpdateTaskRequest, signal?: AbortSignal): Promise<void> {
    const init = this.container(req.id).init;
    await init.update(resourcesJson(req.resources), signal);
  }

  async checkpoint(req: task.CheckpointTaskRequest, signal?: AbortSignal): Promise<void> {
    const init = this.container(req.id).init;
    await init.checkpoint(req.path, checkpointOptions(req.options), signal);
  }

  async stats(req: task.StatsRequest, signal?: AbortSignal): Promise<task.StatsResponse> {
    return this.container(req.id).init.stats(signal);
  }

  async closeIO(req: task.CloseIORequest): Promise<void> {
    const p = this.container(req.id).process(req.execId);
    if (req.stdin) p.closeStdin();
  }

  async resizePty(req: task.ResizePtyRequest): Promise<void> {
    const p = this.container(req.id).process(req.execId);
    if (req.width > 0xffff || req.height > 0xffff)
      throw new TtrpcError(Code.InvalidArgument, "window size out of range");
    p.resize(req.width, req.height);
  }

  async connect(req: task.ConnectRequest): Promise<task.ConnectResponse> {
    const c = req.id ? this.containers.get(req.id) : undefined;
    return { shimPid: process.pid, taskPid: c?.init.pid ?? 0, version: shimVersion };
  }

  /** How many containers this server holds (a grouped server lingers, then exits at 0). */
  get containerCount(): number {
    return this.containers.size;
  }

  async shutdown(_req: task.ShutdownRequest): Promise<void> {
    if (this.containers.size > 0) return;
    this.opts.onShutdown();
  }
}

/** Binds the implementation to the wire descriptor; at debug level every call is logged. */
/** The Task service's ttrpc handlers (idle trim and tracing are interceptors: see interceptors.ts). */
export function taskServiceHandlers(impl: TaskServiceImpl): ServiceImpl<typeof TaskService> {
  return bindHandlers(impl);
}

function bindHandlers(impl: TaskServiceImpl): ServiceImpl<typeof TaskService> {
  const empty = {};
  return {
    state: (req) => impl.state(req),
    create: (req) => impl.create(req),
    start: (req) => impl.start(req),
    delete: (req) => impl.delete(req),
    pids: (req) => impl.pids(req),
    pause: async (req) => {
      await impl.pause(req);
      return empty;
    },
    resume: async (req) => {
      await impl.resume(req);
      return empty;
    },
    checkpoint: async (req, ctx) => {
      await impl.checkpoint(req, ctx.signal);
      return empty;
    },
    kill: async (req) => {
      await impl.kill(req);
      return empty;
    },
    exec: async (req) => {
      await impl.exec(req);
      return empty;
    },
    resizePty: async (req) => {
      await impl.resizePty(req);
      return empty;
    },
    closeIO: async (req) => {
      await impl.closeIO(req);
      return empty;
    },
    update: async (req, ctx) => {
      await impl.update(req, ctx.signal);
      return empty;
    },
    wait: (req, ctx) => impl.wait(req, ctx.signal),
    stats: (req, ctx) => impl.stats(req, ctx.signal),
    connect: (req) => impl.connect(req),
    shutdown: async (req) => {
      await impl.shutdown(req);
      return empty;
    },
  };
}
