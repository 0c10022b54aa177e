// Wires tsruncd together: lock → store → boot reconcile → serve. Also what tests use to run a
// daemon in-process when they do not need a separate process.
import { chmod, chown, mkdir } from "node:fs/promises";
import type { Server as NetServer } from "node:net";
import { join } from "node:path";
import type { Server } from "@tsrunc/ttrpc";
import { listenUnix } from "@tsrunc/ttrpc/unix";
import type { Logger } from "pino";
import { NetworkManager } from "./cni/network-manager.js";
import type { DaemonConfig } from "./config.js";
import { EventExchange } from "./events/exchange.js";
import { resolveGroup } from "./group.js";
import { type GrpcApi, serveGrpcApi } from "./grpc/listener.js";
import { ImageSystem } from "./images/system.js";
import { lockRoot, type RootLock } from "./lock.js";
import { peerAccess } from "./peer-access.js";
import { type BootReport, boot } from "./runtime/boot.js";
import { TaskManager } from "./runtime/task-manager.js";
import { daemonServer, registerServices, type Services } from "./server.js";
import { ContainersApi } from "./services/containers.js";
import { ContentApi } from "./services/content.js";
import { DiffApi } from "./services/diff.js";
import { EventsApi } from "./services/events.js";
import { HealthApi } from "./services/health.js";
import { ImageToolsApi } from "./services/image-tools.js";
import { ImagesApi } from "./services/images.js";
import { IntrospectionApi } from "./services/introspection.js";
import { LeasesApi } from "./services/leases.js";
import { NamespacesApi } from "./services/namespaces.js";
import { SnapshotsApi } from "./services/snapshots.js";
import { TasksApi } from "./services/tasks.js";
import { VersionApi } from "./services/version.js";
import { MetadataStore } from "./store/index.js";

export interface RunningDaemon {
  config: DaemonConfig;
  manager: TaskManager;
  store: MetadataStore;
  images: ImageSystem;
  /** Settles when boot has reconciled every container (see runtime/boot.ts). */
  bootReport: Promise<BootReport>;
  /** Stops serving and closes shim connections; every container keeps running. */
  stop(): Promise<void>;
}

/** The environment shims start with: ours without NODE_*, with their sockets and runc state under <state>. */
function shimEnvFor(config: DaemonConfig): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("NODE_") && v !== undefined) env[k] = v;
  env.PATH = env.PATH || "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  env.TSRUNC_SOCKET_DIR = join(config.state, ".s");
  env.TSRUNC_RUNC_ROOT = join(config.state, ".runc");
  return env;
}

export async function startDaemon(config: DaemonConfig, log: Logger): Promise<RunningDaemon> {
  await mkdir(config.root, { recursive: true, mode: 0o700 });
  await mkdir(config.state, { recursive: true, mode: 0o711 });
  const gid = config.group === undefined ? undefined : await resolveGroup(config.group);
  const lock: RootLock = lockRoot(config.root);
  let store: MetadataStore | undefined;
  let listener: NetServer | undefined;
  let images: ImageSystem | undefined;
  let grpcApi: GrpcApi | undefined;
  try {
    store = MetadataStore.open(join(config.root, "meta.db"));
    images = await ImageSystem.open({ root: config.root, metadata: store, log });
    // Before serving, so that no operation is in flight: what a crash left (an unpack's or a
    // run's snapshot, ingests no pull lease holds) goes now. See README, garbage collection.
    await images.gc.collect({ boot: true });
    images.schedule();
    const exchange = new EventExchange();
    const network = new NetworkManager(store.database, {
      confDir: config.cniConfDir,
      binDirs: config.cniBinDirs,
      pinDir: join(config.state, ".netns"),
      log,
    });
    const manager = new TaskManager({
      network,
      state: config.state,
      address: config.address,
      store,
      exchange,
      log,
      shimEnv: shimEnvFor(config),
      debugShims: config.debugShims,
      ...(config.shimTimeoutMs ? { shimTimeoutMs: config.shimTimeoutMs } : {}),
    });
    // Reconcile runs while we serve: boot queues every known container's lock first, so a
    // request for a container waits for that container only (and tasks List for all of them).
    const bootReport = boot(manager);
    // Root and the --group's members only, checked per connection by SO_PEERCRED (peer-access.ts).
    const access = peerAccess({ gid, log });
    const imageSystem = images;
    const leases = new LeasesApi({ leases: images.leases, collect: () => imageSystem.gc.collect() });
    const leaseLookup = (namespace: string, id: string) => leases.lookup(namespace, id);
    const served = new Set<string>();
    const services: Services = {
      containers: new ContainersApi(store, exchange, network),
      tasks: new TasksApi(store, manager),
      events: new EventsApi(exchange),
      images: {
        images: new ImagesApi(images, exchange),
        snapshots: new SnapshotsApi(images, leaseLookup),
        tools: new ImageToolsApi(images, exchange),
        content: new ContentApi(images, leaseLookup),
        diff: new DiffApi(images, leaseLookup),
      },
      namespaces: new NamespacesApi(config.root, namespaceRecords(store, images)),
      leases,
      version: new VersionApi(),
      introspection: new IntrospectionApi(config.root, () => served),
      health: new HealthApi(() => served),
    };
    // The services the API serves, as Introspection lists them (io.containerd.grpc.v1 plugins).
    registerServices({ register: (desc) => served.add(desc.name) }, services);
    const server: Server = daemonServer(services, log, {
      peerCredentials: access.peerCredentials,
      interceptors: [access.interceptor],
    });
    listener = await listenUnix(config.address);
    if (gid !== undefined) {
      // Members of the group may connect (0660, root:group); peer-access.ts checks who did.
      await chown(config.address, 0, gid);
      await chmod(config.address, 0o660);
    }
    server.serve(listener);
    if (config.grpcAddress !== undefined) {
      grpcApi = await serveGrpcApi(services, { address: config.grpcAddress, gid, access, log });
    }
    log.info(
      { address: config.address, grpcAddress: config.grpcAddress, root: config.root, state: config.state },
      "tsruncd serving",
    );
    const openGrpc = grpcApi;
    const openStore = store;
    const openImages = images;
    let stopping: Promise<void> | undefined;
    return {
      config,
      manager,
      store,
      images,
      bootReport,
      stop: () => {
        stopping ??= (async () => {
          exchange.closeAll("tsruncd is stopping");
          await Promise.all([
            server.shutdown({ timeoutMs: 2_000 }).catch(() => {}),
            openGrpc?.close().catch(() => {}),
          ]);
          leases.close();
          await manager.close();
          await openImages.close();
          openStore.close();
          lock.release();
          log.info("tsruncd stopped; containers keep running");
        })();
        return stopping;
      },
    };
  } catch (err) {
    await grpcApi?.close().catch(() => {});
    listener?.close();
    await images?.close();
    store?.close();
    lock.release();
    throw err;
  }
}

/** Where namespaces are in use, for the Namespaces service: containers and image records. */
function namespaceRecords(store: MetadataStore, images: ImageSystem) {
  return {
    inUse: () => new Set([...store.namespaces(), ...images.images.all().map((r) => r.namespace)]),
    contents: (namespace: string) => {
      const left: string[] = [];
      if (store.listContainers(namespace).length) left.push("containers");
      if (images.images.list(namespace).length) left.push("images");
      return left;
    },
  };
}
