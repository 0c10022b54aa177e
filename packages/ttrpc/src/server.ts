// The ttrpc server: the table of registered methods, the listeners, and the connections they
// accept, with graceful and forced shutdown. What one connection does with its frames is
// server-connection.ts's; how a call runs, for each stream kind, is server-dispatch.ts's.
//
// A handler's failure becomes a status on its stream, never an exception out of the server,
// and a peer that breaks the protocol loses its own connection only.

import type { Server as NetServer, Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { PeerCredentials, ServiceImpl } from "./call-context.js";
import type { ServerInterceptor } from "./interceptor.js";
import { type ConnectionHost, ServerConnection } from "./server-connection.js";
import type { Registered } from "./server-stream.js";
import type { ServiceDescriptor } from "./service.js";
import { Code, TtrpcError } from "./status.js";
import { listenUnix } from "./unix.js";

export type {
  BidiStreamingHandler,
  CallContext,
  ClientStreamingHandler,
  HandlerOf,
  PeerCredentials,
  ServerStreamingHandler,
  ServiceImpl,
  UnaryHandler,
} from "./call-context.js";

export interface ServerOptions {
  /** Streams one connection may have open at once; more are answered ResourceExhausted. Default 1024. */
  maxStreamsPerConnection?: number;
  /**
   * Supplies the peer's credentials (SO_PEERCRED, e.g. from a native addon); they reach
   * peerCheck and every handler's ctx.peer.
   */
  peerCredentials?: (socket: Socket) => PeerCredentials | undefined;
  /** Admits or refuses a new connection before any of its frames is read; refused ones are closed. */
  peerCheck?: (socket: Socket, peer: PeerCredentials | undefined) => boolean | Promise<boolean>;
  /** Told about connection-level trouble (protocol violations, refused peers, socket errors). */
  onError?: (err: Error) => void;
  /** Wrapped around every call's handler, the first outermost (more with use()). */
  interceptors?: ServerInterceptor[];
}

export interface ShutdownOptions {
  /** After this long, connections still busy are closed by force. */
  timeoutMs?: number;
}

export const DEFAULT_MAX_STREAMS_PER_CONNECTION = 1024;

export class Server {
  readonly #opts: ServerOptions;
  readonly #methods = new Map<string, Map<string, Registered>>();
  readonly #interceptors: ServerInterceptor[];
  readonly #listeners = new Set<NetServer>();
  readonly #connections = new Set<ServerConnection>();
  readonly #host: ConnectionHost;
  #closing = false;
  #idleWaiters: (() => void)[] = [];

  constructor(opts: ServerOptions = {}) {
    this.#opts = opts;
    this.#interceptors = [...(opts.interceptors ?? [])];
    this.#host = {
      maxStreams: opts.maxStreamsPerConnection ?? DEFAULT_MAX_STREAMS_PER_CONNECTION,
      interceptors: this.#interceptors,
      shuttingDown: () => this.#closing,
      lookup: (service, method) => this.#lookup(service, method),
      report: (err) => this.#report(err),
      closed: (conn) => this.#connectionClosed(conn),
    };
  }

  /** Registers a service implementation. Methods missing from `impl` answer Unimplemented. */
  register<S extends ServiceDescriptor>(desc: S, impl: ServiceImpl<S>): this {
    if (this.#methods.has(desc.name)) throw new Error(`ttrpc: service ${desc.name} registered twice`);
    const table = new Map<string, Registered>();
    const handlers = impl as unknown as Record<string, unknown>;
    for (const [key, method] of Object.entries(desc.methods)) {
      const handler = handlers[key];
      if (typeof handler !== "function") continue;
      table.set(method.name, { service: desc.name, method, handler: handler as Registered["handler"], impl });
    }
    this.#methods.set(desc.name, table);
    return this;
  }

  /** Adds interceptors inside those already configured; they apply to calls that start afterwards. */
  use(...interceptors: ServerInterceptor[]): this {
    this.#interceptors.push(...interceptors);
    return this;
  }

  /** Listens on a unix socket (see listenUnix: 0600 file in a 0700 dir, stale files replaced). */
  async listen(address: string): Promise<NetServer> {
    if (this.#closing) throw new TtrpcError(Code.Unavailable, "ttrpc: server is shut down");
    const listener = await listenUnix(address);
    this.serve(listener);
    return listener;
  }

  /** Serves connections accepted by an existing listener (e.g. one inherited as fd 3). */
  serve(listener: NetServer): void {
    this.#listeners.add(listener);
    listener.on("connection", (socket: Socket) => this.handleConnection(socket));
    listener.on("error", (err) => this.#report(err));
    listener.once("close", () => this.#listeners.delete(listener));
  }

  /** Serves one connected socket, after the peerCredentials and peerCheck options have had their say. */
  handleConnection(socket: Socket): void {
    if (this.#closing) {
      socket.destroy();
      return;
    }
    let peer: PeerCredentials | undefined;
    try {
      peer = this.#opts.peerCredentials?.(socket);
    } catch (err) {
      this.#report(
        new TtrpcError(Code.PermissionDenied, "ttrpc: cannot read peer credentials", { cause: err }),
      );
      socket.destroy();
      return;
    }
    const conn = this.#accept(socket, peer);
    const check = this.#opts.peerCheck;
    if (check === undefined) {
      conn.start();
      return;
    }
    let verdict: boolean | Promise<boolean>;
    try {
      verdict = check(socket, peer);
    } catch (err) {
      conn.refuse(err);
      return;
    }
    if (typeof verdict === "boolean") {
      if (verdict) conn.start();
      else conn.refuse(undefined);
      return;
    }
    verdict.then(
      (ok) => (ok ? conn.start() : conn.refuse(undefined)),
      (err) => conn.refuse(err),
    );
  }

  /**
   * Serves any connected byte stream (an in-memory pair, a socket already vetted elsewhere).
   * peerCredentials and peerCheck, which need a socket, are not run: `peer` is what handlers
   * see as ctx.peer.
   */
  serveConnection(conn: Duplex, peer?: PeerCredentials): void {
    if (this.#closing) {
      conn.destroy();
      return;
    }
    this.#accept(conn, peer).start();
  }

  /** Connections currently open. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /**
   * Graceful stop: stop accepting, answer new requests Unavailable, let in-flight calls finish,
   * close each connection as it goes idle. Resolves when all are closed (or forced after
   * `timeoutMs`).
   */
  async shutdown(opts: ShutdownOptions = {}): Promise<void> {
    this.#closing = true;
    const listenersClosed = this.#closeListeners();
    for (const conn of this.#connections) conn.endIfIdle();
    const idle = this.#whenNoConnections();
    if (opts.timeoutMs === undefined) {
      await idle;
    } else {
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), opts.timeoutMs);
      });
      const timedOut = await Promise.race([idle.then(() => false), expired]);
      clearTimeout(timer);
      if (timedOut) this.#destroyConnections();
      await this.#whenNoConnections();
    }
    await listenersClosed;
  }

  /** Forced stop: stop accepting and close every connection now; handlers see their signal abort. */
  async close(): Promise<void> {
    this.#closing = true;
    const listenersClosed = this.#closeListeners();
    this.#destroyConnections();
    await this.#whenNoConnections();
    await listenersClosed;
  }

  #accept(conn: Duplex, peer: PeerCredentials | undefined): ServerConnection {
    const c = new ServerConnection(this.#host, conn, peer);
    this.#connections.add(c);
    return c;
  }

  #lookup(service: string, method: string): Registered | TtrpcError {
    const table = this.#methods.get(service);
    if (table === undefined) return new TtrpcError(Code.Unimplemented, `service ${service}`);
    const reg = table.get(method);
    if (reg === undefined) return new TtrpcError(Code.Unimplemented, `method ${method}`);
    return reg;
  }

  #report(err: Error): void {
    try {
      this.#opts.onError?.(err);
    } catch {
      // A failing logger must not take the server down.
    }
  }

  #connectionClosed(conn: ServerConnection): void {
    this.#connections.delete(conn);
    if (this.#connections.size === 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  #whenNoConnections(): Promise<void> {
    if (this.#connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #destroyConnections(): void {
    for (const conn of this.#connections)
      conn.destroy(new TtrpcError(Code.Unavailable, "ttrpc: server closed"));
  }

  #closeListeners(): Promise<void> {
    // net.Server's close callback waits for every connection it accepted, which we track
    // ourselves; listening stops at once, which is what matters here.
    for (const l of this.#listeners) if (l.listening) l.close();
    this.#listeners.clear();
    return Promise.resolve();
  }
}
