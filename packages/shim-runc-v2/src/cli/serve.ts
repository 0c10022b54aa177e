// The long-lived shim server that `start` launched: fd 3 is the listening ttrpc socket, cwd is
// the bundle, TTRPC_ADDRESS is containerd's event socket.
import { readFile } from "node:fs/promises";
import { createServer, type Server as NetServer } from "node:net";
import { join } from "node:path";
import { createReaper, makePipe, peerCredentials, setChildSubreaper, trimWhenIdle } from "@tsrunc/native";
import { Any, type runcoptions, TaskService } from "@tsrunc/protocol/shim";
import { BundleFile } from "@tsrunc/shim-contract/bundle-files";
import type { ShimFlags } from "@tsrunc/shim-contract/shim-flags";
import { removeShimSocketSync, socketPath } from "@tsrunc/shim-contract/socket-path";
import { Server, type ServerInterceptor } from "@tsrunc/ttrpc";
import { EventPublisher } from "../events/publisher.js";
import { forwardEvent, taskEvents } from "../events/task-events.js";
import { idleTrim, tracing } from "../interceptors.js";
import { openShimLog } from "../log.js";
import { runcOptionsFromAny } from "../runtime-options.js";
import type { ShimContext } from "../shim-context.js";
import { TaskServiceImpl, taskServiceHandlers } from "../task-service.js";
import { GroupLiveMarker } from "./group-live.js";
import { moveIntoCgroup } from "./shim-cgroup.js";

/** How long an emptied grouped server waits for a new container before it exits. */
const GROUP_LINGER_MS = Number(process.env.TSRUNC_GROUP_LINGER_MS ?? 1000);

export async function serve(flags: ShimFlags, bundle = process.cwd()): Promise<void> {
  // Before any runc runs: the container's processes must re-parent to us.
  setChildSubreaper();
  // The shim outlives its start bundle when it serves a pod (containerd removes the sandbox's
  // bundle while other containers still run), and a child spawned with a removed cwd fails
  // with ENOENT. Paths are absolute from here on.
  process.chdir("/");
  const log = openShimLog(bundle, { namespace: flags.namespace, id: flags.id }, flags.debug);
  // A shim must not die silently: containerd shows the log, so the last word goes there.
  const die = (kind: string) => (err: unknown) => {
    log.fatal({ err: err instanceof Error ? (err.stack ?? err.message) : String(err) }, kind);
    log.flush?.();
    setTimeout(() => process.exit(2), 100);
  };
  process.on("uncaughtException", die("uncaught exception"));
  process.on("unhandledRejection", die("unhandled rejection"));
  const reaper = createReaper();
  const publisher = new EventPublisher({
    address: process.env.TTRPC_ADDRESS ?? "",
    namespace: flags.namespace,
    forward: forwardEvent,
    log,
  });

  // The same inputs `start` used; a listener on an inherited fd does not know its own path.
  const socketFile = socketPath(flags.address, flags.namespace, process.env.TSRUNC_SHIM_GROUP || flags.id);
  const grouped = (process.env.TSRUNC_SHIM_GROUP ?? "").startsWith("group:");
  // A grouped server keeps its live marker in step with the containers it holds (group-live.ts).
  const live = grouped ? new GroupLiveMarker(socketFile) : undefined;
  const syncLive: ServerInterceptor = (next) => (call) =>
    next(call).finally(() => live?.sync(impl.containerCount));
  const server = new Server({
    peerCredentials: (s) => peerCredentials(s),
    // Only root or our own uid may drive the shim (it runs containers as root).
    peerCheck: (_s, peer) => peer === undefined || peer.uid === 0 || peer.uid === process.getuid?.(),
    onError: (err) => log.warn({ err: err.message }, "ttrpc connection error"),
    interceptors: [
      idleTrim,
      ...(live ? [syncLive] : []),
      ...(log.isLevelEnabled("debug") ? [tracing(log)] : []),
    ],
  });

  let exiting = false;
  const exit = async () => {
    if (exiting) return;
    exiting = true;
    // A grouped server's marker and socket go first: a `start` from now on binds a new one.
    live?.clear();
    if (grouped) removeShimSocketSync(socketFile);
    log.info("shutting down");
    await publisher.flush(2000);
    publisher.close();
    await server.shutdown({ timeoutMs: 1000 }).catch(() => {});
    removeShimSocketSync(socketFile);
    reaper.close();
    log.flush?.();
    setTimeout(() => process.exit(0), 50).unref();
  };

  const ctx: ShimContext = {
    namespace: flags.namespace,
    shimBundle: bundle,
    reaper,
    makePipe,
    events: taskEvents(publisher),
    log,
  };
  const startOptions = await readStartOptions(bundle);
  if (startOptions?.shimCgroup) {
    try {
      moveIntoCgroup(startOptions.shimCgroup, process.pid);
    } catch (err) {
      die("cannot join the shim cgroup")(err);
      return;
    }
  }
  // A grouped server (cli/start.ts) may be handed to a new container by a `start` that found it
  // alive just as its last container was deleted: it lingers GROUP_LINGER_MS after a Shutdown
  // that leaves it empty, each new connection (that `start`'s liveness probe, then containerd)
  // restarts the wait, and it exits only if it is still empty then.
  let linger: NodeJS.Timeout | undefined;
  const lingerThenExit = () => {
    live?.clear(); // no new container is handed this server by the launcher's sh part
    if (linger) return void linger.refresh();
    linger = setTimeout(() => {
      linger = undefined;
      if (impl.containerCount === 0) void exit();
    }, GROUP_LINGER_MS);
  };
  const impl = new TaskServiceImpl(ctx, {
    defaultOptions: startOptions,
    onShutdown: () => (grouped ? lingerThenExit() : setImmediate(exit)),
  });
  server.register(TaskService, taskServiceHandlers(impl));
  // Only now start accepting: a connection accepted by a net.Server without a 'connection'
  // handler would sit unread forever (containerd's Create hung that way while we awaited above).
  const listener = await listenOnInheritedFd(3, server);
  listener.on("connection", () => linger?.refresh());
  process.on("SIGTERM", () => void exit());
  log.info({ socket: socketFile }, "shim serving");
  trimWhenIdle(); // start-up's freed memory
}

/** Accepts on the socket `start` bound, with the ttrpc server attached before the first accept. */
function listenOnInheritedFd(fd: number, server: Server): Promise<NetServer> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    server.serve(s);
    s.once("error", reject);
    s.listen({ fd }, () => {
      s.off("error", reject);
      resolve(s);
    });
  });
}

/** The runtime options `start` received on stdin (runc's, or the CRI plugin's generic ones), if any. */
async function readStartOptions(bundle: string): Promise<runcoptions.Options | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(join(bundle, BundleFile.shimOptions));
  } catch {
    return undefined;
  }
  try {
    return runcOptionsFromAny(Any.decode(bytes));
  } catch {
    return undefined;
  }
}
