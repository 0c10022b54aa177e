// The ttrpc server: accepts connections, routes each Request to the handler registered for its
// service and method, and answers on the same stream id.
//
// Rules that protect the process from its peers:
// - a handler's failure becomes a status on its stream, never an exception out of the server;
// - a connection that breaks the protocol (stream id 0 or even, a reused or decreasing id, data
//   on a unary stream or after the peer closed its side, an unknown message type, a Response
//   sent to the server) is closed; other connections carry on;
// - oversized frames (ResourceExhausted), undecodable requests (InvalidArgument), unknown
//   methods (Unimplemented) and streams over the per-connection cap (ResourceExhausted) are
//   answered on their own stream and the connection stays usable.

import type { Server as NetServer, Socket } from "node:net";
import { Channel } from "./channel.js";
import { Flags, MAX_DATA_LENGTH, MessageType } from "./frame-codec.js";
import { MessageQueue } from "./message-queue.js";
import { decodeRequest, encodeResponse, type Request } from "./messages.js";
import { fromKeyValues, type IncomingMetadata } from "./metadata.js";
import type {
  AnyMethod,
  KindOf,
  RequestOf,
  ResponseInputOf,
  ServiceDescriptor,
  StreamKind,
} from "./service.js";
import { Code, TtrpcError, toTtrpcError } from "./status.js";
import { listenUnix } from "./unix.js";

/** Credentials of the process at the other end of a unix socket (SO_PEERCRED). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** What a handler learns about its call besides the request. */
export interface CallContext {
  /** Aborts when the deadline passes (reason: DeadlineExceeded) or the peer goes away (Canceled). */
  readonly signal: AbortSignal;
  /** Request metadata, keys lowercased. */
  readonly metadata: IncomingMetadata;
  /** Deadline in ms since the epoch (Date.now() scale), when the client sent a timeout. */
  readonly deadline: number | undefined;
  /** Wire names, e.g. "containerd.task.v2.Task" and "Create". */
  readonly service: string;
  readonly method: string;
  /** The peer's credentials when a peerCredentials provider is configured. */
  readonly peer: PeerCredentials | undefined;
}

export type UnaryHandler<Req, Res> = (req: Req, ctx: CallContext) => Res | Promise<Res>;
export type ServerStreamingHandler<Req, Res> = (
  req: Req,
  ctx: CallContext,
) => AsyncIterable<Res> | Iterable<Res>;
export type ClientStreamingHandler<Req, Res> = (
  reqs: AsyncIterable<Req>,
  ctx: CallContext,
) => Res | Promise<Res>;
export type BidiStreamingHandler<Req, Res> = (
  reqs: AsyncIterable<Req>,
  ctx: CallContext,
) => AsyncIterable<Res> | Iterable<Res>;

/** The handler type for one method, chosen by its stream kind. */
export type HandlerOf<M> =
  KindOf<M> extends "unary"
    ? UnaryHandler<RequestOf<M>, ResponseInputOf<M>>
    : KindOf<M> extends "server"
      ? ServerStreamingHandler<RequestOf<M>, ResponseInputOf<M>>
      : KindOf<M> extends "client"
        ? ClientStreamingHandler<RequestOf<M>, ResponseInputOf<M>>
        : KindOf<M> extends "bidi"
          ? BidiStreamingHandler<RequestOf<M>, ResponseInputOf<M>>
          : never;

/** An implementation of a service: one handler per method, keyed like the descriptor's methods. */
export type ServiceImpl<S extends ServiceDescriptor> = {
  [K in keyof S["methods"]]: HandlerOf<S["methods"][K]>;
};

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
}

export interface ShutdownOptions {
  /** After this long, connections still busy are closed by force. */
  timeoutMs?: number;
}

interface Registered {
  service: string;
  method: AnyMethod;
  // biome-ignore lint/suspicious/noExplicitAny: handlers of every message type share this table
  handler: (...args: any[]) => any;
  impl: object;
}

export const DEFAULT_MAX_STREAMS_PER_CONNECTION = 1024;

export class Server {
  private readonly methods = new Map<string, Map<string, Registered>>();
  private readonly listeners = new Set<NetServer>();
  private readonly connections = new Set<ServerConnection>();
  private closing = false;
  private idleWaiters: (() => void)[] = [];
  /** @internal */
  readonly maxStreams: number;

  constructor(private readonly opts: ServerOptions = {}) {
    this.maxStreams = opts.maxStreamsPerConnection ?? DEFAULT_MAX_STREAMS_PER_CONNECTION;
  }

  /** Registers a service implementation. Methods missing from `impl` answer Unimplemented. */
  register<S extends ServiceDescriptor>(desc: S, impl: ServiceImpl<S>): this {
    if (this.methods.has(desc.name)) throw new Error(`ttrpc: service ${desc.name} registered twice`);
    const table = new Map<string, Registered>();
    const handlers = impl as unknown as Record<string, unknown>;
    for (const [key, method] of Object.entries(desc.methods)) {
      const handler = handlers[key];
      if (typeof handler !== "function") continue;
      table.set(method.name, { service: desc.name, method, handler: handler as Registered["handler"], impl });
    }
    this.methods.set(desc.name, table);
    return this;
  }

  /** Listens on a unix socket (see listenUnix: 0600 file in a 0700 dir, stale files replaced). */
  async listen(address: string): Promise<NetServer> {
    if (this.closing) throw new TtrpcError(Code.Unavailable, "ttrpc: server is shut down");
    const listener = await listenUnix(address);
    this.serve(listener);
    return listener;
  }

  /** Serves connections accepted by an existing listener (e.g. one inherited as fd 3). */
  serve(listener: NetServer): void {
    this.listeners.add(listener);
    listener.on("connection", (socket: Socket) => this.handleConnection(socket));
    listener.on("error", (err) => this.report(err));
    listener.once("close", () => this.listeners.delete(listener));
  }

  /** Serves one connected socket. */
  handleConnection(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    let peer: PeerCredentials | undefined;
    try {
      peer = this.opts.peerCredentials?.(socket);
    } catch (err) {
      this.report(
        new TtrpcError(Code.PermissionDenied, "ttrpc: cannot read peer credentials", { cause: err }),
      );
      socket.destroy();
      return;
    }
    const conn = new ServerConnection(this, socket, peer);
    this.connections.add(conn);
    const check = this.opts.peerCheck;
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

  /** Connections currently open. */
  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * Graceful stop: stop accepting, answer new requests Unavailable, let in-flight calls finish,
   * close each connection as it goes idle. Resolves when all are closed (or forced after
   * `timeoutMs`).
   */
  async shutdown(opts: ShutdownOptions = {}): Promise<void> {
    this.closing = true;
    const listenersClosed = this.closeListeners();
    for (const conn of this.connections) conn.endIfIdle();
    const idle = this.whenNoConnections();
    if (opts.timeoutMs === undefined) {
      await idle;
    } else {
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), opts.timeoutMs);
      });
      const timedOut = await Promise.race([idle.then(() => false), expired]);
      clearTimeout(timer);
      if (timedOut) this.destroyConnections();
      await this.whenNoConnections();
    }
    await listenersClosed;
  }

  /** Forced stop: stop accepting and close every connection now; handlers see their signal abort. */
  async close(): Promise<void> {
    this.closing = true;
    const listenersClosed = this.closeListeners();
    this.destroyConnections();
    await this.whenNoConnections();
    await listenersClosed;
  }

  /** @internal */
  get shuttingDown(): boolean {
    return this.closing;
  }

  /** @internal */
  lookup(service: string, method: string): Registered | TtrpcError {
    const table = this.methods.get(service);
    if (table === undefined) return new TtrpcError(Code.Unimplemented, `service ${service}`);
    const reg = table.get(method);
    if (reg === undefined) return new TtrpcError(Code.Unimplemented, `method ${method}`);
    return reg;
  }

  /** @internal */
  report(err: Error): void {
    try {
      this.opts.onError?.(err);
    } catch {
      // A failing logger must not take the server down.
    }
  }

  /** @internal */
  connectionClosed(conn: ServerConnection): void {
    this.connections.delete(conn);
    if (this.connections.size === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private whenNoConnections(): Promise<void> {
    if (this.connections.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private destroyConnections(): void {
    for (const conn of this.connections)
      conn.destroy(new TtrpcError(Code.Unavailable, "ttrpc: server closed"));
  }

  private closeListeners(): Promise<void> {
    // net.Server's close callback waits for every connection it accepted, which we track
    // ourselves; listening stops at once, which is what matters here.
    for (const l of this.listeners) if (l.listening) l.close();
    this.listeners.clear();
    return Promise.resolve();
  }
}

/** A call on the server side; it is also the handler's CallContext. */
class ServerCall implements CallContext {
  finished = false;
  /** The client sent remote-closed: further data on this stream breaks the protocol. */
  inputClosed = false;
  readonly deadline: number | undefined;
  readonly metadata: IncomingMetadata;
  /** Client and bidi streaming: the requests as they arrive. */
  input: MessageQueue<unknown> | undefined;
  private controller: AbortController | undefined;
  private abortReason: TtrpcError | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly conn: ServerConnection,
    readonly id: number,
    readonly reg: Registered,
    req: Request,
  ) {
    this.metadata = fromKeyValues(req.metadata);
    this.deadline = req.timeoutNano > 0 ? Date.now() + req.timeoutNano / 1e6 : undefined;
  }

  get service(): string {
    return this.reg.service;
  }

  get method(): string {
    return this.reg.method.name;
  }

  get peer(): PeerCredentials | undefined {
    return this.conn.peer;
  }

  /**
   * Created on first use: most unary handlers never look at it, and an AbortController plus a
   * deadline timer per call is a measurable share of a small call's cost.
   */
  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason);
      else this.armDeadline();
    }
    return this.controller.signal;
  }

  /** Streaming calls arm the deadline at once: it must also end their request stream. */
  armDeadline(): void {
    if (this.deadline === undefined || this.timer !== undefined || this.finished) return;
    const left = this.deadline - Date.now();
    const expire = () => this.abort(new TtrpcError(Code.DeadlineExceeded, "ttrpc: deadline exceeded"));
    if (left <= 0) expire();
    // Node's timers cannot wait longer than 2^31-1 ms (they would fire at once instead).
    else if (left <= 0x7fffffff) this.timer = setTimeout(expire, left);
  }

  abort(reason: TtrpcError): void {
    if (this.abortReason !== undefined) return;
    this.abortReason = reason;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.input?.fail(reason);
    this.controller?.abort(reason);
  }

  /** Releases what the call holds once its final frame is written. */
  dispose(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** One accepted connection. */
class ServerConnection {
  private readonly channel: Channel;
  private readonly calls = new Map<number, ServerCall>();
  private lastStreamId = 0;
  private closed = false;

  constructor(
    private readonly server: Server,
    readonly socket: Socket,
    readonly peer: PeerCredentials | undefined,
  ) {
    this.channel = new Channel(
      socket,
      {
        frame: (id, type, flags, data) => this.onFrame(id, type, flags, data),
        oversize: (id, type, _flags, length) => this.onOversize(id, type, length),
        protocolError: (err) => this.violation(err.message),
      },
      (err) => this.onClose(err),
    );
  }

  start(): void {
    this.channel.start();
  }

  refuse(err: unknown): void {
    this.server.report(
      new TtrpcError(Code.PermissionDenied, "ttrpc: connection refused by peer check", {
        cause: err,
      }),
    );
    this.channel.destroy();
  }

  destroy(reason: TtrpcError): void {
    this.abortAll(reason);
    this.channel.destroy();
  }

  /** During shutdown: close now if nothing is in flight. */
  endIfIdle(): void {
    if (this.calls.size === 0 && !this.closed) this.channel.end();
  }

  private onClose(err: Error | undefined): void {
    this.closed = true;
    // A peer that vanishes mid-write is ordinary; anything else is worth telling.
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (err !== undefined && code !== "ECONNRESET" && code !== "EPIPE") this.server.report(err);
    this.abortAll(new TtrpcError(Code.Canceled, "ttrpc: connection closed"));
    this.server.connectionClosed(this);
  }

  private abortAll(reason: TtrpcError): void {
    for (const call of this.calls.values()) {
      call.finished = true;
      call.abort(reason);
      call.dispose();
    }
    this.calls.clear();
  }

  private violation(message: string): void {
    if (this.closed) return;
    this.server.report(
      new TtrpcError(Code.InvalidArgument, `ttrpc: protocol violation, closing connection: ${message}`),
    );
    this.destroy(new TtrpcError(Code.Canceled, "ttrpc: connection closed after a protocol violation"));
  }

  private onOversize(id: number, type: number, length: number): void {
    const err = new TtrpcError(
      Code.ResourceExhausted,
      `message length ${length} exceed maximum message size of ${MAX_DATA_LENGTH}`,
    );
    // An oversized Data frame ends its stream; an oversized Request never opened one. Either
    // way the answer goes on that stream id, as Go ttrpc does, and the connection carries on.
    const call = type === MessageType.Data ? this.calls.get(id) : undefined;
    if (call !== undefined) this.fail(call, err);
    else this.sendStatus(id, err);
  }

  private onFrame(id: number, type: number, flags: number, data: Buffer): void {
    if (id === 0 || (id & 1) === 0) {
      this.violation(`stream id ${id} is not a client stream id (odd, non-zero)`);
      return;
    }
    if (type === MessageType.Request) {
      this.onRequest(id, flags, data);
    } else if (type === MessageType.Data) {
      this.onData(id, flags, data);
    } else {
      this.violation(`unexpected message type ${type} from a client on stream ${id}`);
    }
  }

  private onRequest(id: number, flags: number, data: Buffer): void {
    if (id <= this.lastStreamId) {
      this.violation(`stream id ${id} reused or not increasing (last ${this.lastStreamId})`);
      return;
    }
    this.lastStreamId = id;
    if (this.server.shuttingDown) {
      this.sendStatus(id, new TtrpcError(Code.Unavailable, "ttrpc: server shutting down"));
      return;
    }
    if (this.calls.size >= this.server.maxStreams) {
      this.sendStatus(
        id,
        new TtrpcError(
          Code.ResourceExhausted,
          `ttrpc: too many concurrent streams (${this.server.maxStreams})`,
        ),
      );
      return;
    }
    let req: Request;
    try {
      req = decodeRequest(data);
    } catch (err) {
      this.sendStatus(
        id,
        new TtrpcError(Code.InvalidArgument, `unmarshal request error: ${(err as Error).message}`, {
          cause: err,
        }),
      );
      return;
    }
    const reg = this.server.lookup(req.service, req.method);
    if (reg instanceof TtrpcError) {
      this.sendStatus(id, reg);
      return;
    }
    const call = new ServerCall(this, id, reg, req);
    this.calls.set(id, call);
    switch (reg.method.kind as StreamKind) {
      case "unary":
        this.runUnary(call, req.payload);
        return;
      case "server":
        call.armDeadline();
        this.runServerStreaming(call, req.payload);
        return;
      case "client":
      case "bidi":
        // The deadline is armed once the request stream exists (runStreamingInput): a deadline
        // already past would otherwise abort a call with no stream to fail yet.
        this.runStreamingInput(call, req, flags);
        return;
    }
  }

  private onData(id: number, flags: number, data: Buffer): void {
    const call = this.calls.get(id);
    if (call === undefined) {
      // Data for a stream we already finished is a benign race (the client was still sending
      // when we answered); data for a stream never opened is not.
      if (id > this.lastStreamId) this.violation(`data on stream ${id}, which was never opened`);
      return;
    }
    const input = call.input;
    if (input === undefined) {
      this.violation(`data on stream ${id}, which does not stream requests`);
      return;
    }
    if (input.closed) {
      // The handler stopped reading, or the request stream failed: drop. After remote-closed,
      // though, the client broke the protocol.
      if (call.inputClosed) this.violation(`data on stream ${id} after the client closed it`);
      return;
    }
    if ((flags & Flags.NoData) === 0) {
      let msg: unknown;
      try {
        msg = call.reg.method.requestType.decode(data);
      } catch (err) {
        this.fail(
          call,
          new TtrpcError(Code.InvalidArgument, "ttrpc: cannot decode stream message", { cause: err }),
        );
        return;
      }
      input.push(msg);
    }
    if ((flags & Flags.RemoteClosed) !== 0) {
      call.inputClosed = true;
      input.end();
    }
  }

  private runUnary(call: ServerCall, payload: Uint8Array): void {
    const { method, handler, impl } = call.reg;
    let req: unknown;
    try {
      req = method.requestType.decode(payload);
    } catch (err) {
      this.fail(
        call,
        new TtrpcError(Code.InvalidArgument, "ttrpc: cannot decode request payload", { cause: err }),
      );
      return;
    }
    let result: unknown;
    try {
      result = handler.call(impl, req, call);
    } catch (err) {
      this.fail(call, toTtrpcError(err));
      return;
    }
    if (isThenable(result)) {
      result.then(
        (res) => this.reply(call, res),
        (err) => this.fail(call, toTtrpcError(err)),
      );
    } else {
      this.reply(call, result);
    }
  }

  private runServerStreaming(call: ServerCall, payload: Uint8Array): void {
    const { method, handler, impl } = call.reg;
    let req: unknown;
    try {
      req = method.requestType.decode(payload);
    } catch (err) {
      this.fail(
        call,
        new TtrpcError(Code.InvalidArgument, "ttrpc: cannot decode request payload", { cause: err }),
      );
      return;
    }
    let out: unknown;
    try {
      out = handler.call(impl, req, call);
    } catch (err) {
      this.fail(call, toTtrpcError(err));
      return;
    }
    void this.pump(call, out);
  }

  private runStreamingInput(call: ServerCall, req: Request, flags: number): void {
    const { method, handler, impl } = call.reg;
    const input = new MessageQueue<unknown>(
      this.channel.queueHooks(() =>
        this.fail(call, new TtrpcError(Code.ResourceExhausted, "ttrpc: stream receive buffer full")),
      ),
    );
    call.input = input;
    // An expired deadline fails the stream at once: the handler ends and the client is answered.
    call.armDeadline();
    // As Go ttrpc: a payload present in the Request is the first message of the stream.
    if (req.hasPayload) {
      try {
        input.push(method.requestType.decode(req.payload));
      } catch (err) {
        this.fail(
          call,
          new TtrpcError(Code.InvalidArgument, "ttrpc: cannot decode request payload", { cause: err }),
        );
        return;
      }
    }
    // Remote-closed on the Request: nothing follows (Go clients never do this for a streaming
    // client, but the protocol allows it).
    if ((flags & Flags.RemoteClosed) !== 0) {
      call.inputClosed = true;
      input.end();
    }
    let out: unknown;
    try {
      out = handler.call(impl, input, call);
    } catch (err) {
      this.fail(call, toTtrpcError(err));
      return;
    }
    if (method.kind === "bidi") {
      void this.pump(call, out);
    } else if (isThenable(out)) {
      out.then(
        (res) => this.reply(call, res),
        (err) => this.fail(call, toTtrpcError(err)),
      );
    } else {
      this.reply(call, out);
    }
  }

  /** Sends a streaming handler's messages as data frames, then remote-closed. */
  private async pump(call: ServerCall, out: unknown): Promise<void> {
    let it: AsyncIterator<unknown> | Iterator<unknown>;
    try {
      it = iteratorOf(out);
    } catch (err) {
      this.fail(call, toTtrpcError(err));
      return;
    }
    const encode = call.reg.method.responseType;
    const writer = this.channel.writer;
    try {
      for (;;) {
        const r = await it.next();
        if (call.finished) break;
        if (r.done) break;
        let bytes: Uint8Array;
        try {
          bytes = encode.encode(r.value);
        } catch (err) {
          throw new TtrpcError(Code.Internal, "ttrpc: cannot encode stream message", { cause: err });
        }
        if (bytes.length > MAX_DATA_LENGTH) {
          throw new TtrpcError(
            Code.ResourceExhausted,
            `ttrpc: stream message of ${bytes.length} bytes exceeds ${MAX_DATA_LENGTH}`,
          );
        }
        writer.frame(call.id, MessageType.Data, 0, bytes);
        if (writer.needsDrain) await writer.drained();
      }
    } catch (err) {
      this.fail(call, toTtrpcError(err));
      await closeIterator(it);
      return;
    }
    if (call.finished) {
      // Aborted (peer gone, stream failed) while the handler was still producing: stop it.
      await closeIterator(it);
      return;
    }
    writer.frame(call.id, MessageType.Data, Flags.RemoteClosed | Flags.NoData);
    this.finish(call);
  }

  /** Answers a unary or client-streaming call with its response message. */
  private reply(call: ServerCall, res: unknown): void {
    if (call.finished) return;
    let payload: Uint8Array;
    try {
      payload = call.reg.method.responseType.encode(res);
    } catch (err) {
      this.fail(call, new TtrpcError(Code.Internal, "ttrpc: cannot encode response", { cause: err }));
      return;
    }
    const bytes = encodeResponse({ payload });
    if (bytes.length > MAX_DATA_LENGTH) {
      this.fail(
        call,
        new TtrpcError(
          Code.ResourceExhausted,
          `ttrpc: response of ${bytes.length} bytes exceeds ${MAX_DATA_LENGTH}`,
        ),
      );
      return;
    }
    this.channel.writer.frame(call.id, MessageType.Response, 0, bytes);
    this.finish(call);
  }

  /** Ends a call with an error status (and aborts its handler if it is still running). */
  private fail(call: ServerCall, err: TtrpcError): void {
    if (call.finished) return;
    this.sendStatus(call.id, err);
    call.abort(err);
    this.finish(call);
  }

  private finish(call: ServerCall): void {
    call.finished = true;
    call.dispose();
    if (this.calls.get(call.id) === call) this.calls.delete(call.id);
    if (this.calls.size === 0 && this.server.shuttingDown && !this.closed) this.channel.end();
  }

  private sendStatus(id: number, err: TtrpcError): void {
    if (this.closed) return;
    let bytes = encodeResponse({
      status: { code: err.code, message: err.message, details: err.details as never },
    });
    if (bytes.length > MAX_DATA_LENGTH) {
      // Only huge details can do this; the code and a short message still fit.
      bytes = encodeResponse({ status: { code: err.code, message: err.message.slice(0, 1024) } });
    }
    this.channel.writer.frame(id, MessageType.Response, 0, bytes);
  }
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === "object" && v !== null && typeof (v as { then?: unknown }).then === "function";
}

function iteratorOf(out: unknown): AsyncIterator<unknown> | Iterator<unknown> {
  if (out !== null && typeof out === "object") {
    const o = out as Partial<AsyncIterable<unknown> & Iterable<unknown>>;
    const asyncIter = o[Symbol.asyncIterator];
    if (typeof asyncIter === "function") return asyncIter.call(o);
    const syncIter = o[Symbol.iterator];
    if (typeof syncIter === "function") return syncIter.call(o);
  }
  throw new TtrpcError(Code.Internal, "ttrpc: streaming handler did not return an iterable");
}

async function closeIterator(it: AsyncIterator<unknown> | Iterator<unknown>): Promise<void> {
  try {
    await it.return?.();
  } catch {
    // The handler's cleanup failing changes nothing: the stream is already over.
  }
}
