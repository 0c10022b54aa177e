// For this package's tests only (not exported): a fake tsruncd. An in-process ttrpc Server
// with containerd's Containers, Tasks and Events services kept in memory, which treats stdio
// as the shim does (stdout/stderr fifos opened read-write at Create; stdin read with a
// keep-alive writer that CloseIO drops) and "runs" a process by its args:
//
//   echo WORDS...   writes WORDS to stdout, exits 0       exit N   exits with status N
//   err WORDS...    writes WORDS to stderr, exits 0       cat      copies stdin to stdout, exits 0 at EOF
//   sleep           runs until killed: exit status 128+signal
//
// Every call is recorded with the namespace it arrived in.

import { closeSync, constants, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type Any,
  ContainersService,
  cgroup2,
  type containersapi,
  EventsService,
  type eventsapi,
  events as eventTypes,
  type MessageInit,
  OciProcessType,
  OciSpecType,
  packAny,
  TasksService,
  tasktypes,
  timestampNow,
  unpackAnyAs,
} from "@tsrunc/protocol";
import { type CallContext, Code, Server, TtrpcError } from "@tsrunc/ttrpc";

export interface Teardown {
  teardown(fn: () => unknown): void;
}

export interface RecordedCall {
  service: string;
  method: string;
  namespace: string | undefined;
  request: unknown;
}

interface FakeProcess {
  containerId: string;
  id: string;
  pid: number;
  status: tasktypes.Status;
  args: string[];
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
  exitStatus: number;
  exited: Promise<void>;
  exit: (status: number) => void;
  fds: number[];
  keepAlive: number | undefined;
  stdinSocket: Socket | undefined;
}

/** A queue that a server stream can await. */
class EventQueue {
  items: eventsapi.Envelope[] = [];
  wake: (() => void) | undefined;
  push(e: eventsapi.Envelope): void {
    this.items.push(e);
    this.wake?.();
  }
}

export class FakeDaemon {
  readonly calls: RecordedCall[] = [];
  readonly containers = new Map<string, containersapi.Container>();
  readonly processes = new Map<string, FakeProcess>();
  readonly subscribers = new Set<EventQueue>();
  readonly server = new Server();
  nextPid = 1000;

  constructor(readonly path: string) {}

  /** Starts a fake daemon on a socket in a fresh temp dir, closed in teardown. */
  static async start(t: Teardown): Promise<FakeDaemon> {
    const dir = mkdtempSync(join(tmpdir(), "tsd-"));
    const d = new FakeDaemon(join(dir, "d.sock"));
    d.register();
    await d.server.listen(d.path);
    t.teardown(async () => {
      await d.server.close();
      for (const p of d.processes.values()) d.closeFds(p);
      rmSync(dir, { recursive: true, force: true });
    });
    return d;
  }

  callsOf(method: string): RecordedCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  /** The request of the n-th call of a method (negative n counts from the end); throws if none. */
  request<T = Record<string, unknown>>(method: string, n = 0): T {
    const c = this.callsOf(method).at(n);
    if (c === undefined) throw new Error(`no call #${n} of ${method}`);
    return c.request as T;
  }

  publish(namespace: string, topic: string, event: Any): void {
    const env: eventsapi.Envelope = { timestamp: timestampNow(), namespace, topic, event };
    for (const q of this.subscribers) q.push(env);
  }

  private record(ctx: CallContext, request: unknown): string {
    const namespace = ctx.metadata["containerd-namespace"]?.[0];
    this.calls.push({ service: ctx.service, method: ctx.method, namespace, request });
    return namespace ?? "default";
  }

  private key(ns: string, id: string, execId = ""): string {
    return `${ns}/${id}/${execId}`;
  }

  private process(ns: string, containerId: string, execId = ""): FakeProcess {
    const p = this.processes.get(this.key(ns, containerId, execId));
    if (p === undefined) {
      throw new TtrpcError(
        Code.NotFound,
        `${execId ? `process ${execId}` : "task"} ${containerId}: not found`,
      );
    }
    return p;
  }

  private closeFds(p: FakeProcess): void {
    for (const fd of p.fds.splice(0)) if (fd >= 0) closeSync(fd);
    if (p.keepAlive !== undefined) closeSync(p.keepAlive);
    p.keepAlive = undefined;
    p.stdinSocket?.destroy();
  }

  private newProcess(
    ns: string,
    req: {
      containerId: string;
      id: string;
      args: string[];
      stdin: string;
      stdout: string;
      stderr: string;
      terminal: boolean;
    },
  ): FakeProcess {
    let exit!: (status: number) => void;
    const p: FakeProcess = {
      ...req,
      pid: this.nextPid++,
      status: tasktypes.Status.CREATED,
      exitStatus: 0,
      exited: new Promise<void>((res) => {
        exit = (status) => {
          if (p.status === tasktypes.Status.STOPPED) return;
          p.status = tasktypes.Status.STOPPED;
          p.exitStatus = status;
          this.closeFds(p);
          this.publish(
            ns,
            "/tasks/exit",
            packAny(eventTypes.TaskExit, {
              containerId: p.containerId,
              id: p.id,
              pid: p.pid,
              exitStatus: status,
            }),
          );
          res();
        };
      }),
      exit: (s) => exit(s),
      fds: [],
      keepAlive: undefined,
      stdinSocket: undefined,
    };
    // As the shim: output fifos read-write (never blocks, no reader needed), stdin read with a
    // keep-alive writer. A log URI or "" is not a fifo and is left alone.
    for (const path of [p.stdout, p.stderr]) {
      if (path.startsWith("/")) p.fds.push(openSync(path, constants.O_RDWR | constants.O_NONBLOCK));
      else p.fds.push(-1);
    }
    if (p.stdin.startsWith("/")) {
      const r = openSync(p.stdin, constants.O_RDONLY | constants.O_NONBLOCK);
      p.keepAlive = openSync(p.stdin, constants.O_WRONLY | constants.O_NONBLOCK);
      p.stdinSocket = new Socket({ fd: r, readable: true, writable: false });
      p.stdinSocket.pause();
      p.stdinSocket.on("error", () => {});
    }
    this.processes.set(this.key(ns, p.containerId, p.id === p.containerId ? "" : p.id), p);
    return p;
  }

  /** Runs the process's "program" (see the header). */
  private run(p: FakeProcess): void {
    const [cmd, ...rest] = p.args;
    const write = (i: number, text: string) => {
      const fd = p.fds[i];
      if (fd !== undefined && fd >= 0) writeSync(fd, text);
    };
    p.status = tasktypes.Status.RUNNING;
    setTimeout(() => {
      switch (cmd) {
        case "echo":
          write(0, `${rest.join(" ")}\n`);
          p.exit(0);
          return;
        case "err":
          write(p.terminal ? 0 : 1, `${rest.join(" ")}\n`);
          p.exit(0);
          return;
        case "exit":
          p.exit(Number(rest[0] ?? 0));
          return;
        case "cat": {
          const s = p.stdinSocket;
          if (s === undefined) {
            p.exit(0);
            return;
          }
          s.on("data", (d: Buffer) => write(0, d.toString()));
          s.on("end", () => p.exit(0));
          s.resume();
          return;
        }
        default:
          // sleep: until killed
          return;
      }
    }, 5);
  }

  private register(): void {
    this.server.register(ContainersService, {
      create: (req, ctx) => {
        const ns = this.record(ctx, req);
        const c = req.container;
        if (this.containers.has(`${ns}/${c.id}`)) {
          throw new TtrpcError(Code.AlreadyExists, `container "${c.id}": already exists`);
        }
        const stored = { ...c, createdAt: timestampNow(), updatedAt: timestampNow() };
        this.containers.set(`${ns}/${c.id}`, stored);
        return { container: stored };
      },
      get: (req, ctx) => {
        const ns = this.record(ctx, req);
        const c = this.containers.get(`${ns}/${req.id}`);
        if (c === undefined) throw new TtrpcError(Code.NotFound, `container "${req.id}": not found`);
        return { container: c };
      },
      list: (req, ctx) => {
        const ns = this.record(ctx, req);
        return {
          containers: [...this.containers.entries()]
            .filter(([k]) => k.startsWith(`${ns}/`))
            .map(([, c]) => c),
        };
      },
      listStream: function* () {},
      update: (req, ctx) => {
        const ns = this.record(ctx, req);
        const key = `${ns}/${req.container.id}`;
        const c = this.containers.get(key);
        if (c === undefined)
          throw new TtrpcError(Code.NotFound, `container "${req.container.id}": not found`);
        const updated = { ...c, labels: req.container.labels, updatedAt: timestampNow() };
        this.containers.set(key, updated);
        return { container: updated };
      },
      delete: (req, ctx) => {
        const ns = this.record(ctx, req);
        if (!this.containers.delete(`${ns}/${req.id}`)) {
          throw new TtrpcError(Code.NotFound, `container "${req.id}": not found`);
        }
        return {};
      },
    });

    this.server.register(TasksService, {
      create: (req, ctx) => {
        const ns = this.record(ctx, req);
        const c = this.containers.get(`${ns}/${req.containerId}`);
        if (c === undefined) throw new TtrpcError(Code.NotFound, `container "${req.containerId}": not found`);
        if (this.processes.has(this.key(ns, req.containerId))) {
          throw new TtrpcError(Code.AlreadyExists, `task ${req.containerId}: already exists`);
        }
        const spec = unpackAnyAs(c.spec!, OciSpecType);
        const p = this.newProcess(ns, {
          containerId: req.containerId,
          id: req.containerId,
          args: spec.process?.args ?? [],
          stdin: req.stdin,
          stdout: req.stdout,
          stderr: req.stderr,
          terminal: req.terminal,
        });
        return { containerId: req.containerId, pid: p.pid };
      },
      start: (req, ctx) => {
        const ns = this.record(ctx, req);
        const p = this.process(ns, req.containerId, req.execId);
        if (p.status !== tasktypes.Status.CREATED) {
          throw new TtrpcError(Code.FailedPrecondition, `process ${p.id} is not in created state`);
        }
        this.run(p);
        return { pid: p.pid };
      },
      delete: (req, ctx) => {
        const ns = this.record(ctx, req);
        const p = this.process(ns, req.containerId);
        if (p.status !== tasktypes.Status.STOPPED && p.status !== tasktypes.Status.CREATED) {
          throw new TtrpcError(Code.FailedPrecondition, `task ${req.containerId} must be stopped`);
        }
        this.closeFds(p);
        this.processes.delete(this.key(ns, req.containerId));
        return { id: p.id, pid: p.pid, exitStatus: p.exitStatus };
      },
      deleteProcess: (req, ctx) => {
        const ns = this.record(ctx, req);
        const p = this.process(ns, req.containerId, req.execId);
        this.processes.delete(this.key(ns, req.containerId, req.execId));
        return { id: p.id, pid: p.pid, exitStatus: p.exitStatus };
      },
      get: (req, ctx) => {
        const ns = this.record(ctx, req);
        return { process: this.toProcess(this.process(ns, req.containerId, req.execId)) };
      },
      list: (req, ctx) => {
        const ns = this.record(ctx, req);
        return {
          tasks: [...this.processes.entries()]
            .filter(([k]) => k.startsWith(`${ns}/`) && k.endsWith("/"))
            .map(([, p]) => this.toProcess(p)),
        };
      },
      kill: (req, ctx) => {
        const ns = this.record(ctx, req);
        const p = this.process(ns, req.containerId, req.execId);
        if (p.status === tasktypes.Status.STOPPED)
          throw new TtrpcError(Code.NotFound, "process already finished");
        if (req.signal !== 28) setTimeout(() => p.exit(128 + req.signal), 5); // SIGWINCH is ignored
        return {};
      },
      exec: (req, ctx) => {
        const ns = this.record(ctx, req);
        this.process(ns, req.containerId);
        if (this.processes.has(this.key(ns, req.containerId, req.execId))) {
          throw new TtrpcError(Code.AlreadyExists, `exec ${req.execId}: already exists`);
        }
        const spec = unpackAnyAs(req.spec!, OciProcessType);
        this.newProcess(ns, {
          containerId: req.containerId,
          id: req.execId,
          args: spec.args ?? [],
          stdin: req.stdin,
          stdout: req.stdout,
          stderr: req.stderr,
          terminal: req.terminal,
        });
        return {};
      },
      resizePty: (req, ctx) => {
        this.record(ctx, req);
        return {};
      },
      closeIO: (req, ctx) => {
        const ns = this.record(ctx, req);
        const p = this.process(ns, req.containerId, req.execId);
        if (req.stdin && p.keepAlive !== undefined) {
          closeSync(p.keepAlive);
          p.keepAlive = undefined;
        }
        return {};
      },
      pause: (req, ctx) => {
        const ns = this.record(ctx, req);
        this.process(ns, req.containerId).status = tasktypes.Status.PAUSED;
        return {};
      },
      resume: (req, ctx) => {
        const ns = this.record(ctx, req);
        this.process(ns, req.containerId).status = tasktypes.Status.RUNNING;
        return {};
      },
      listPids: (req, ctx) => {
        const ns = this.record(ctx, req);
        const p = this.process(ns, req.containerId);
        return { processes: [{ pid: p.pid }] };
      },
      checkpoint: (req, ctx) => {
        this.record(ctx, req);
        throw new TtrpcError(Code.Unimplemented, "checkpoint is not supported");
      },
      update: (req, ctx) => {
        this.record(ctx, req);
        return {};
      },
      metrics: (req, ctx) => {
        this.record(ctx, req);
        const id = req.filters[0]?.replace(/^id==/, "") ?? "";
        return {
          metrics: [
            {
              timestamp: timestampNow(),
              id,
              data: packAny(cgroup2.Metrics, {
                pids: { current: 3n, limit: 100n },
                memory: { usage: 4096n },
              }),
            },
          ],
        };
      },
      wait: async (req, ctx) => {
        const ns = this.record(ctx, req);
        const p = this.process(ns, req.containerId, req.execId);
        await p.exited;
        return { exitStatus: p.exitStatus, exitedAt: timestampNow() };
      },
    });

    const subscribers = this.subscribers;
    const record = (ctx: CallContext, req: unknown) => this.record(ctx, req);
    this.server.register(EventsService, {
      publish: (req, ctx) => {
        const ns = record(ctx, req);
        if (req.event !== undefined) this.publish(ns, req.topic, req.event);
        return {};
      },
      forward: (req, ctx) => {
        record(ctx, req);
        return {};
      },
      subscribe: async function* (req, ctx) {
        record(ctx, req);
        const q = new EventQueue();
        subscribers.add(q);
        try {
          while (!ctx.signal.aborted) {
            const next = q.items.shift();
            if (next !== undefined) {
              yield next;
              continue;
            }
            await new Promise<void>((res) => {
              q.wake = res;
              ctx.signal.addEventListener("abort", () => res(), { once: true });
            });
            q.wake = undefined;
          }
        } finally {
          subscribers.delete(q);
        }
      },
    });
  }

  private toProcess(p: FakeProcess): MessageInit<tasktypes.Process> {
    return {
      containerId: p.containerId,
      id: p.id,
      pid: p.pid,
      status: p.status,
      stdin: p.stdin,
      stdout: p.stdout,
      stderr: p.stderr,
      terminal: p.terminal,
      exitStatus: p.exitStatus,
    };
  }
}
