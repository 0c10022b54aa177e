// Mounts the transport-free services on our ttrpc server: containerd's Containers, Tasks and
// Events services for clients, and the ttrpc Events/Forward that shims publish to (the same
// socket is their TTRPC_ADDRESS). A later issue mounts the same handlers on gRPC.
import { ContainersService, EventsService, TasksService } from "@tsrunc/protocol/daemon";
import { EventsTtrpcService } from "@tsrunc/protocol/shim";
import { type CallContext, Server, type ServerOptions } from "@tsrunc/ttrpc";
import type { Logger } from "pino";
import { namespaceOf } from "./namespace.js";
import type { ContainersApi } from "./services/containers.js";
import type { EventsApi } from "./services/events.js";
import type { CallScope, TasksApi } from "./services/tasks.js";

export interface Services {
  containers: ContainersApi;
  tasks: TasksApi;
  events: EventsApi;
}

function scope(ctx: CallContext): CallScope {
  return { namespace: namespaceOf(ctx.metadata), signal: ctx.signal };
}

export function daemonServer(services: Services, log: Logger, options: ServerOptions = {}): Server {
  const { containers, tasks, events } = services;
  const server = new Server({
    onError: (err: Error) => log.debug({ err: err.message }, "ttrpc connection error"),
    ...options,
  });
  server.register(ContainersService, {
    get: (req, ctx) => containers.get(scope(ctx), req),
    list: (req, ctx) => containers.list(scope(ctx), req),
    listStream: async function* (req, ctx) {
      for (const container of containers.list(scope(ctx), req).containers) yield { container };
    },
    create: (req, ctx) => containers.create(scope(ctx), req),
    update: (req, ctx) => containers.update(scope(ctx), req),
    delete: (req, ctx) => {
      containers.delete(scope(ctx), req);
      return {};
    },
  });
  const empty = async (p: Promise<void>) => {
    await p;
    return {};
  };
  server.register(TasksService, {
    create: (req, ctx) => tasks.create(scope(ctx), req),
    start: (req, ctx) => tasks.start(scope(ctx), req),
    delete: (req, ctx) => tasks.delete(scope(ctx), req),
    deleteProcess: (req, ctx) => tasks.deleteProcess(scope(ctx), req),
    get: (req, ctx) => tasks.get(scope(ctx), req),
    list: (req, ctx) => tasks.list(scope(ctx), req),
    kill: (req, ctx) => empty(tasks.kill(scope(ctx), req)),
    exec: (req, ctx) => empty(tasks.exec(scope(ctx), req)),
    resizePty: (req, ctx) => empty(tasks.resizePty(scope(ctx), req)),
    closeIO: (req, ctx) => empty(tasks.closeIO(scope(ctx), req)),
    pause: (req, ctx) => empty(tasks.pause(scope(ctx), req)),
    resume: (req, ctx) => empty(tasks.resume(scope(ctx), req)),
    listPids: (req, ctx) => tasks.listPids(scope(ctx), req),
    checkpoint: (req, ctx) => tasks.checkpoint(scope(ctx), req),
    update: (req, ctx) => empty(tasks.update(scope(ctx), req)),
    metrics: (req, ctx) => tasks.metrics(scope(ctx), req),
    wait: (req, ctx) => tasks.wait(scope(ctx), req),
  });
  server.register(EventsService, {
    publish: (req, ctx) => {
      events.publish(scope(ctx), req);
      return {};
    },
    forward: (req) => {
      events.forward(req.envelope);
      return {};
    },
    subscribe: (req, ctx) => events.subscribe(req, ctx.signal),
  });
  server.register(EventsTtrpcService, {
    forward: (req) => {
      events.forward(req.envelope);
      return {};
    },
  });
  return server;
}
