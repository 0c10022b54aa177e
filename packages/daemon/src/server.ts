// Mounts the transport-free services on a Registrar: containerd's Containers, Tasks, Events,
// Images and Snapshots services and our ImageTools for clients, and the ttrpc Events/Forward
// that shims publish to (the ttrpc socket is their TTRPC_ADDRESS). The same registration code
// mounts them on our ttrpc Server (daemonServer below) and on containerd's gRPC API (grpc/):
// a Registrar is anything that takes a service descriptor and its handlers, and handlers see
// only a CallContext (metadata, signal, deadline), whichever transport carried the call.
import {
  ContainersService,
  ContentService,
  DiffService,
  EventsService,
  HealthService,
  ImagesService,
  ImageToolsService,
  IntrospectionService,
  LeasesService,
  NamespacesService,
  SnapshotsService,
  TasksService,
  VersionService,
} from "@tsrunc/protocol/daemon";
import { EventsTtrpcService } from "@tsrunc/protocol/shim";
import {
  type CallContext,
  Server,
  type ServerOptions,
  type ServiceDescriptor,
  type ServiceImpl,
} from "@tsrunc/ttrpc";
import type { Logger } from "pino";
import { namespaceOf } from "./namespace.js";
import type { ContainersApi } from "./services/containers.js";
import type { ContentApi } from "./services/content.js";
import type { DiffApi } from "./services/diff.js";
import type { EventsApi } from "./services/events.js";
import type { HealthApi } from "./services/health.js";
import type { ImageToolsApi } from "./services/image-tools.js";
import type { ImagesApi } from "./services/images.js";
import type { IntrospectionApi } from "./services/introspection.js";
import { type LeasedScope, type LeasesApi, leaseIdOf } from "./services/leases.js";
import type { NamespacesApi } from "./services/namespaces.js";
import type { SnapshotsApi } from "./services/snapshots.js";
import type { TasksApi } from "./services/tasks.js";
import type { VersionApi } from "./services/version.js";

export interface Services {
  containers: ContainersApi;
  tasks: TasksApi;
  events: EventsApi;
  /** Absent: the daemon serves no image API (Unimplemented). */
  images?: {
    images: ImagesApi;
    snapshots: SnapshotsApi;
    tools: ImageToolsApi;
    /** containerd's Content and Diff (absent: Unimplemented). */
    content?: ContentApi;
    diff?: DiffApi;
  };
  /** containerd's Namespaces, Leases, Version and Introspection (absent: Unimplemented). */
  namespaces?: NamespacesApi;
  leases?: LeasesApi;
  version?: VersionApi;
  introspection?: IntrospectionApi;
  /** grpc.health.v1.Health (containerd's healthcheck). */
  health?: HealthApi;
}

/** What a transport offers to mount a service on (our ttrpc Server is one as it is). */
export interface Registrar {
  register<S extends ServiceDescriptor>(desc: S, impl: ServiceImpl<S>): unknown;
}

/** The namespace (and lease, `containerd-lease`) a call runs in, from its metadata. */
export function scope(ctx: CallContext): LeasedScope {
  const lease = leaseIdOf(ctx.metadata);
  return { namespace: namespaceOf(ctx.metadata), signal: ctx.signal, ...(lease ? { lease } : {}) };
}

/** Our ttrpc API: every service of `services` plus the shims' Events/Forward. */
export function daemonServer(services: Services, log: Logger, options: ServerOptions = {}): Server {
  const server = new Server({
    onError: (err: Error) => log.debug({ err: err.message }, "ttrpc connection error"),
    ...options,
  });
  registerServices(server, services);
  server.register(EventsTtrpcService, {
    forward: (req) => {
      services.events.forward(req.envelope);
      return {};
    },
  });
  return server;
}

/** Mounts containerd's services (and ImageTools) on any transport. */
export function registerServices(server: Registrar, services: Services): void {
  const { containers, tasks, events } = services;
  server.register(ContainersService, {
    get: (req, ctx) => containers.get(scope(ctx), req),
    list: (req, ctx) => containers.list(scope(ctx), req),
    listStream: async function* (req, ctx) {
      for (const container of containers.list(scope(ctx), req).containers) yield { container };
    },
    create: (req, ctx) => {
      const s = scope(ctx);
      const created = containers.create(s, req);
      services.namespaces?.touch(s.namespace);
      return created;
    },
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
  const { namespaces, leases, version, introspection, health } = services;
  if (namespaces)
    server.register(NamespacesService, {
      get: (req) => namespaces.get(req),
      list: (req) => namespaces.list(req),
      create: (req) => namespaces.create(req),
      update: (req) => namespaces.update(req),
      delete: (req) => {
        namespaces.delete(req);
        return {};
      },
    });
  if (leases)
    server.register(LeasesService, {
      create: (req, ctx) => {
        const s = scope(ctx);
        const created = leases.create(s, req);
        namespaces?.touch(s.namespace);
        return created;
      },
      delete: (req, ctx) => empty(leases.delete(scope(ctx), req)),
      list: (req, ctx) => leases.list(scope(ctx), req),
      addResource: (req, ctx) => {
        leases.addResource(scope(ctx), req);
        return {};
      },
      deleteResource: (req, ctx) => {
        leases.deleteResource(scope(ctx), req);
        return {};
      },
      listResources: (req, ctx) => leases.listResources(scope(ctx), req),
    });
  if (version) server.register(VersionService, { version: () => version.get() });
  if (health)
    server.register(HealthService, {
      check: (req) => health.check(req),
      watch: (req, ctx) => health.watch(req, ctx.signal),
    });
  if (introspection)
    server.register(IntrospectionService, {
      plugins: (req) => introspection.plugins(req),
      server: () => introspection.server(),
    });
  if (services.images) {
    const { images, snapshots, tools } = services.images;
    server.register(ImagesService, {
      get: (req, ctx) => images.get(scope(ctx), req),
      list: (req, ctx) => images.list(scope(ctx), req),
      create: (req, ctx) => images.create(scope(ctx), req),
      update: (req, ctx) => images.update(scope(ctx), req),
      delete: (req, ctx) => empty(images.delete(scope(ctx), req)),
    });
    server.register(SnapshotsService, {
      prepare: (req, ctx) => snapshots.prepare(scope(ctx), req),
      view: (req, ctx) => snapshots.view(scope(ctx), req),
      mounts: (req, ctx) => snapshots.mounts(scope(ctx), req),
      commit: (req, ctx) => empty(snapshots.commit(scope(ctx), req)),
      remove: (req, ctx) => empty(snapshots.remove(scope(ctx), req)),
      stat: (req, ctx) => snapshots.stat(scope(ctx), req),
      update: (req, ctx) => snapshots.update(scope(ctx), req),
      list: (req, ctx) => snapshots.list(scope(ctx), req),
      usage: (req, ctx) => snapshots.usage(scope(ctx), req),
      cleanup: (req, ctx) => empty(snapshots.cleanup(scope(ctx), req)),
    });
    server.register(ImageToolsService, {
      pull: (req, ctx) => tools.pull(scope(ctx), req),
      import: (reqs, ctx) => tools.import(scope(ctx), reqs),
      export: (req, ctx) => tools.export(scope(ctx), req),
      config: (req, ctx) => tools.config(scope(ctx), req),
      prune: (req, ctx) => tools.prune(scope(ctx), req),
    });
    const { content, diff } = services.images;
    if (content)
      server.register(ContentService, {
        info: (req, ctx) => content.info(scope(ctx), req),
        update: (req, ctx) => content.update(scope(ctx), req),
        list: (req, ctx) => content.list(scope(ctx), req),
        delete: (req, ctx) => empty(content.delete(scope(ctx), req)),
        read: (req, ctx) => content.read(scope(ctx), req),
        status: (req, ctx) => content.status(scope(ctx), req),
        listStatuses: (req, ctx) => content.listStatuses(scope(ctx), req),
        write: (reqs, ctx) => content.write(scope(ctx), reqs),
        abort: (req, ctx) => empty(content.abort(scope(ctx), req)),
      });
    if (diff)
      server.register(DiffService, {
        apply: (req, ctx) => diff.apply(scope(ctx), req),
        diff: (req, ctx) => diff.diff(scope(ctx), req),
      });
  }
}
