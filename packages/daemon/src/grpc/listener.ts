// tsruncd's containerd gRPC socket. We listen on the unix socket ourselves (listenUnix: stale
// files replaced, 0600; root:GROUP 0660 with --group, as the ttrpc socket) and decide each
// connection when it is accepted with peer-access.ts (SO_PEERCRED, then /proc groups): an
// admitted connection is handed to the serving grpc-js Server (connection injection), a refused
// one to a second Server on which every registered method answers PermissionDenied — grpc-js
// tells a handler nothing about its connection, so the verdict is made per connection, as on
// ttrpc, rather than per call. Message limits are containerd's (16 MiB each way).
import { chmod, chown } from "node:fs/promises";
import type { Server as NetServer, Socket } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { Code, type ServerCall, TtrpcError } from "@tsrunc/ttrpc";
import { listenUnix } from "@tsrunc/ttrpc/unix";
import type { Logger } from "pino";
import type { PeerAccess } from "../peer-access.js";
import { type Registrar, registerServices, type Services } from "../server.js";
import { GrpcRegistrar, refuseAll, teeRegistrar } from "./registrar.js";
import { answerUnknownMethods } from "./unknown.js";

/** containerd's defaults for gRPC messages (defaults.DefaultMaxRecvMsgSize / SendMsgSize). */
export const maxMessageBytes = 16 << 20;

/**
 * Every connection is pinged after this long without traffic and closed when the ping is not
 * answered within `keepaliveTimeoutMs`. Not for liveness only: node's HTTP/2 session stops
 * reading a socket once it has sent GOAWAY for a protocol error (e.g. HEADERS it cannot
 * decompress), so it never sees that peer close, and the socket (an fd) would stay forever —
 * found by test/fuzz/daemon-grpc (40 such connections: +40 fds, never released). The ping's
 * write to the closed peer fails and ends the session, which closes the socket. Go clients
 * answer pings by themselves, so an idle `ctr events` is unaffected.
 */
export const keepaliveMs = 20_000;
export const keepaliveTimeoutMs = 10_000;

export interface GrpcApiOptions {
  address: string;
  /** The --group gid: the socket becomes root:gid 0660. */
  gid: number | undefined;
  access: PeerAccess;
  log: Logger;
}

export interface GrpcApi {
  readonly address: string;
  /** Stops accepting, ends every call (Canceled) and closes every connection. */
  close(): Promise<void>;
}

/** Builds the two Servers with every service of `services` (plus `extra` registrations). */
export function grpcServers(
  services: Services,
  extra?: (r: Registrar) => void,
  onCall?: (service: string, method: string) => void,
): { serving: grpc.Server; refusing: grpc.Server; names: ReadonlySet<string> } {
  const options = {
    "grpc.max_receive_message_length": maxMessageBytes,
    "grpc.max_send_message_length": maxMessageBytes,
    "grpc.keepalive_time_ms": keepaliveMs,
    "grpc.keepalive_timeout_ms": keepaliveTimeoutMs,
  };
  const serving = new grpc.Server(options);
  const refusing = new grpc.Server(options);
  const served = new GrpcRegistrar(serving, undefined, onCall);
  const refused = new GrpcRegistrar(
    refusing,
    refuseAll(
      () =>
        new TtrpcError(
          Code.PermissionDenied,
          "tsruncd: permission denied: neither root nor a member of the socket's group",
        ),
    ),
  );
  const both = teeRegistrar(served, refused);
  registerServices(both, services);
  extra?.(both);
  return { serving, refusing, names: served.services };
}

/** Whether peer-access admits the peer of `socket` (its interceptor decides, as for ttrpc). */
async function admitted(access: PeerAccess, socket: Socket): Promise<boolean> {
  try {
    const peer = access.peerCredentials(socket);
    const call = { ctx: { peer } } as unknown as ServerCall;
    await access.interceptor(async () => undefined)(call);
    return true;
  } catch {
    return false;
  }
}

export async function serveGrpcApi(
  services: Services,
  opts: GrpcApiOptions,
  extra?: (r: Registrar) => void,
): Promise<GrpcApi> {
  const { log } = opts;
  const trace = log.isLevelEnabled("trace")
    ? (service: string, method: string) => log.trace({ service, method }, "grpc call")
    : undefined;
  const { serving, refusing, names } = grpcServers(services, extra, trace);
  answerUnknownMethods(serving, names, (path) => log.debug({ path }, "grpc: call to an unknown method"));
  const credentials = grpc.ServerCredentials.createInsecure();
  const accept = serving.createConnectionInjector(credentials);
  const refuse = refusing.createConnectionInjector(credentials);
  const listener: NetServer = await listenUnix(opts.address);
  try {
    if (opts.gid !== undefined) {
      await chown(opts.address, 0, opts.gid);
      await chmod(opts.address, 0o660);
    }
  } catch (err) {
    listener.close();
    throw err;
  }
  const sockets = new Set<Socket>();
  listener.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // Until grpc-js takes it, a socket error must not be an unhandled 'error' event.
    const early = (err: Error) => log.debug({ err: err.message }, "grpc: connection error");
    socket.on("error", early);
    void admitted(opts.access, socket).then((ok) => {
      if (socket.destroyed) return;
      try {
        (ok ? accept : refuse).injectConnection(socket);
      } catch (err) {
        log.debug({ err: (err as Error).message }, "grpc: connection not taken");
        socket.destroy();
      }
    });
  });
  listener.on("error", (err) => log.warn({ err: err.message }, "grpc listener error"));
  log.info({ address: opts.address }, "tsruncd serving containerd's gRPC API");
  let closing: Promise<void> | undefined;
  return {
    address: opts.address,
    close: () => {
      closing ??= (async () => {
        // close() stops accepting at once but calls back only when every connection is gone.
        const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
        serving.forceShutdown();
        refusing.forceShutdown();
        accept.destroy();
        refuse.destroy();
        for (const s of sockets) s.destroy();
        await closed;
      })();
      return closing;
    },
  };
}
