// The ttrpc client: many calls multiplexed on one connection, each on its own odd, increasing
// stream id. A unary call is one Request frame out and one Response frame back; streaming calls
// follow the request/data flags of the protocol (see PROTOCOL.md in containerd/ttrpc).
//
// Deadlines travel to the server as timeout_nano and are also enforced here, because the server
// is free to ignore them and ttrpc has no cancel frame: a call that gives up locally simply
// forgets its stream, and a late response for it is dropped.

import type { Duplex } from "node:stream";
import { Channel } from "./channel.js";
import { Flags, MAX_DATA_LENGTH, MessageType } from "./frame-codec.js";
import type { FrameWriter } from "./frame-writer.js";
import {
  applyInterceptors,
  type ClientCall,
  type ClientHandler,
  type ClientInterceptor,
  handedBack,
} from "./interceptor.js";
import { MessageQueue } from "./message-queue.js";
import { decodeResponse, encodeRequest, type Response } from "./messages.js";
import { type Metadata, toKeyValues } from "./metadata.js";
import type {
  KindOf,
  MessageCodec,
  MethodDescriptor,
  RequestInputOf,
  ResponseOf,
  ServiceDescriptor,
  StreamKind,
} from "./service.js";
import { Code, TtrpcError } from "./status.js";
import { connectUnix } from "./unix.js";

export interface CallOptions {
  /** Deadline relative to now: sent as timeout_nano and enforced locally (DeadlineExceeded). */
  timeoutMs?: number;
  /** Aborting fails the call with Canceled (DeadlineExceeded for AbortSignal.timeout()). */
  signal?: AbortSignal;
  /** Sent as Request.metadata; keys are lowercased as Go ttrpc does. */
  metadata?: Metadata;
}

export interface ClientOptions {
  /** Wrapped around every call this client makes, the first outermost. */
  interceptors?: ClientInterceptor[];
}

export interface ConnectOptions extends ClientOptions {
  /** Give up connecting after this long. */
  timeoutMs?: number;
}

/** The raw (bytes) side of a streaming call; the typed stubs wrap it. */
export interface RawStream {
  /** The stream id; 0 while client interceptors hold the call back. */
  readonly id: number;
  /** Sends one message (client and bidi streaming). Resolves when the socket can take more. */
  send(payload: Uint8Array): Promise<void>;
  /** Tells the server no more messages follow (client and bidi streaming). */
  closeSend(): void;
  /** Messages from the server (server and bidi streaming). */
  readonly messages: AsyncIterableIterator<Uint8Array>;
  /** The final response (client streaming; rejects on error status). */
  readonly response: Promise<Uint8Array>;
}

export interface ClientStreamingCall<Req, Res> {
  send(req: Req): Promise<void>;
  closeSend(): void;
  readonly response: Promise<Res>;
}

export interface BidiStreamingCall<Req, Res> extends AsyncIterable<Res> {
  send(req: Req): Promise<void>;
  closeSend(): void;
}

/** The typed function a stub offers for one method, chosen by the method's stream kind. */
export type StubMethod<M> =
  KindOf<M> extends "unary"
    ? (req: RequestInputOf<M>, opts?: CallOptions) => Promise<ResponseOf<M>>
    : KindOf<M> extends "server"
      ? (req: RequestInputOf<M>, opts?: CallOptions) => AsyncIterable<ResponseOf<M>>
      : KindOf<M> extends "client"
        ? (opts?: CallOptions) => ClientStreamingCall<RequestInputOf<M>, ResponseOf<M>>
        : KindOf<M> extends "bidi"
          ? (opts?: CallOptions) => BidiStreamingCall<RequestInputOf<M>, ResponseOf<M>>
          : never;

export type ClientStub<S extends ServiceDescriptor> = {
  [K in keyof S["methods"]]: StubMethod<S["methods"][K]>;
};

const RESOLVED = Promise.resolve();
const MAX_TIMER_MS = 0x7fffffff;
/** RawStream.response of server and bidi streams, which have no single response. */
const NO_RESPONSE: Promise<Uint8Array> = Promise.resolve(new Uint8Array(0));
const noop = () => {};
const DONE: Promise<IteratorResult<Uint8Array>> = Promise.resolve({ value: undefined, done: true });
/** ClientCall.options of a call made without options. */
const NO_OPTIONS: CallOptions = Object.freeze({});
/** The "codec" of client.call() and openStream(): the request already is bytes. */
const rawCodec: MessageCodec<Uint8Array, unknown> = {
  encode: (req) => {
    if (!(req instanceof Uint8Array)) throw new TypeError("a raw call's request must be a Uint8Array");
    return req;
  },
  decode: (bytes) => bytes,
};

/** Why an aborted signal ended a call: AbortSignal.timeout() is a deadline, anything else a cancel. */
function abortError(signal: AbortSignal): TtrpcError {
  const reason: unknown = signal.reason;
  if (reason instanceof TtrpcError) return reason;
  if (reason instanceof Error && reason.name === "TimeoutError") {
    return new TtrpcError(Code.DeadlineExceeded, "ttrpc: call timed out", { cause: reason });
  }
  return new TtrpcError(Code.Canceled, "ttrpc: call canceled", { cause: reason });
}

function statusError(res: Response): TtrpcError {
  const { code, message, details } = res.status;
  return new TtrpcError(code as Code, message, { details });
}

/** What starting a call takes: where it goes, what it carries, and who hears of its end. */
interface StartOptions {
  service: string;
  method: string;
  kind: StreamKind;
  /** The Request's payload: the request message of unary and server-streaming calls. */
  payload: Uint8Array | undefined;
  call: CallOptions | undefined;
  /** Unary and client streaming: the single response. */
  resolve?: (payload: Uint8Array) => void;
  reject?: (err: TtrpcError) => void;
  /** Told once when the call ends, with its error (undefined: it ended well). */
  onEnd?: (err: TtrpcError | undefined) => void;
}

/** The flags of the Request frame that opens a call of each kind. */
function requestFlags(kind: StreamKind): number {
  // Unary: none. Server streaming: remote-closed, the client sends nothing after the request.
  // Client and bidi streaming: remote-open, data frames follow (and the Request has no payload).
  return kind === "unary" ? 0 : kind === "server" ? Flags.RemoteClosed : Flags.RemoteOpen;
}

/** One open stream: a unary call, or a streaming call's client side. */
class ClientStream {
  readonly id: number;
  readonly #start: StartOptions;
  readonly #writer: FrameWriter;
  readonly #forget: (s: ClientStream) => void;
  #done = false;
  #localClosed: boolean;
  #error: TtrpcError | undefined;
  #timer: NodeJS.Timeout | undefined;
  #signal: AbortSignal | undefined;
  #onAbort: (() => void) | undefined;
  /** Server and bidi streaming: received messages. */
  readonly #queue: MessageQueue<Uint8Array> | undefined;

  constructor(id: number, start: StartOptions, channel: Channel, forget: (s: ClientStream) => void) {
    this.id = id;
    this.#start = start;
    this.#writer = channel.writer;
    this.#forget = forget;
    this.#localClosed = start.kind === "unary" || start.kind === "server";
    if (start.kind === "server" || start.kind === "bidi") {
      this.#queue = new MessageQueue<Uint8Array>(
        channel.queueHooks(() =>
          this.finish(new TtrpcError(Code.ResourceExhausted, "ttrpc: stream receive buffer full")),
        ),
      );
    }
  }

  /** Server and bidi streaming: the messages, ending with the call (or failing with it). */
  get messages(): MessageQueue<Uint8Array> | undefined {
    return this.#queue;
  }

  /** Ends the call at its deadline or when `signal` aborts, whichever comes first. */
  watch(timeoutMs: number | undefined, signal: AbortSignal | undefined): void {
    // Node's timers cannot wait longer than 2^31-1 ms (they fire at once instead); a deadline
    // 24 days away is no deadline for a local call.
    if (timeoutMs !== undefined && timeoutMs <= MAX_TIMER_MS) {
      const { service, method } = this.#start;
      this.#timer = setTimeout(
        () =>
          this.finish(
            new TtrpcError(Code.DeadlineExceeded, `ttrpc: ${service}/${method}: deadline exceeded`),
          ),
        timeoutMs,
      );
    }
    if (signal !== undefined) {
      this.#signal = signal;
      this.#onAbort = () => this.finish(abortError(signal));
      signal.addEventListener("abort", this.#onAbort, { once: true });
    }
  }

  /**
   * Ends the call; `err` undefined means success (the resolve was already done). A `remote`
   * error (the server's status) still lets the consumer read the messages that preceded it; a
   * local one (deadline, cancel, connection lost) is reported at once.
   */
  finish(err: TtrpcError | undefined, remote = false): void {
    if (this.#done) return;
    this.#done = true;
    this.#error = err;
    this.#forget(this);
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#onAbort !== undefined) this.#signal!.removeEventListener("abort", this.#onAbort);
    if (err !== undefined) {
      this.#start.reject?.(err);
      if (remote) this.#queue?.end(err);
      else this.#queue?.fail(err);
    } else {
      this.#queue?.end();
    }
    this.#start.onEnd?.(err);
  }

  send(payload: Uint8Array): Promise<void> {
    if (this.#localClosed) {
      return Promise.reject(
        new TtrpcError(Code.FailedPrecondition, "ttrpc: send on a stream closed for sending"),
      );
    }
    if (this.#done) {
      return Promise.reject(
        this.#error ?? new TtrpcError(Code.FailedPrecondition, "ttrpc: stream already finished"),
      );
    }
    if (payload.length > MAX_DATA_LENGTH) {
      return Promise.reject(
        new TtrpcError(
          Code.ResourceExhausted,
          `ttrpc: message of ${payload.length} bytes exceeds ${MAX_DATA_LENGTH}`,
        ),
      );
    }
    const w = this.#writer;
    w.frame(this.id, MessageType.Data, 0, payload);
    return w.needsDrain ? w.drained() : RESOLVED;
  }

  closeSend(): void {
    if (this.#localClosed) return;
    this.#localClosed = true;
    if (!this.#done) this.#writer.frame(this.id, MessageType.Data, Flags.RemoteClosed | Flags.NoData);
  }

  /** A frame for this stream arrived. */
  onFrame(type: number, flags: number, data: Buffer): void {
    if (type === MessageType.Response) {
      let res: Response;
      try {
        res = decodeResponse(data);
      } catch (err) {
        this.finish(new TtrpcError(Code.Internal, "ttrpc: malformed response", { cause: err }));
        return;
      }
      if (res.status.code !== Code.OK) {
        this.finish(statusError(res), true);
        return;
      }
      const resolve = this.#start.resolve;
      if (resolve !== undefined) {
        resolve(res.payload);
      } else if (res.payload.length > 0) {
        // A streaming server may end with a Response carrying one last message.
        this.#queue?.push(res.payload);
      }
      this.finish(undefined);
      return;
    }
    if (type === MessageType.Data) {
      const queue = this.#queue;
      if (queue === undefined) {
        this.finish(
          new TtrpcError(Code.Internal, `ttrpc: data frame on non-streaming-server stream ${this.id}`),
        );
        return;
      }
      if ((flags & Flags.NoData) === 0) queue.push(data);
      if ((flags & Flags.RemoteClosed) !== 0) this.finish(undefined);
    }
    // A Request from the server (server-initiated streams) is not part of the protocol yet: ignored.
  }
}

/**
 * The RawStream of a streaming call that waits for its interceptors before it opens: what is
 * done to it meanwhile (sends, closeSend, leaving the messages) is replayed in order once it is
 * open, or fails with the interceptors' error if it never opens. Its id is 0 until then.
 */
class PendingStream implements RawStream {
  readonly messages: AsyncIterableIterator<Uint8Array>;
  readonly response: Promise<Uint8Array>;
  #stream: RawStream | undefined;
  #error: unknown;
  #refused = false;
  #backlog: (() => void)[] = [];
  readonly #ready: Promise<RawStream>;
  #settle!: { resolve(s: RawStream): void; reject(err: unknown): void };

  constructor(kind: StreamKind) {
    this.#ready = new Promise<RawStream>((resolve, reject) => {
      this.#settle = { resolve, reject };
    });
    this.#ready.catch(noop);
    if (kind === "client") {
      this.response = this.#ready.then((s) => s.response);
      this.response.catch(noop);
    } else {
      this.response = NO_RESPONSE;
    }
    const messages: AsyncIterableIterator<Uint8Array> = {
      next: () => this.#stream?.messages.next() ?? this.#ready.then((s) => s.messages.next()),
      return: () => {
        const s = this.#stream;
        if (s !== undefined) return s.messages.return?.() ?? DONE;
        if (!this.#refused) this.#backlog.push(() => void this.#stream?.messages.return?.());
        return DONE;
      },
      [Symbol.asyncIterator]: () => messages,
    };
    this.messages = messages;
  }

  get id(): number {
    return this.#stream?.id ?? 0;
  }

  send(payload: Uint8Array): Promise<void> {
    if (this.#stream !== undefined) return this.#stream.send(payload);
    if (this.#refused) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      this.#backlog.push(() =>
        this.#stream === undefined ? reject(this.#error) : this.#stream.send(payload).then(resolve, reject),
      );
    });
  }

  closeSend(): void {
    if (this.#stream !== undefined) this.#stream.closeSend();
    else if (!this.#refused) this.#backlog.push(() => this.#stream?.closeSend());
  }

  /** The call opened as `stream`. */
  open(stream: RawStream): void {
    if (this.#stream !== undefined || this.#refused) return;
    this.#stream = stream;
    this.#drain();
    this.#settle.resolve(stream);
  }

  /** The interceptors failed the call before it opened; once it is open this changes nothing. */
  refuse(err: unknown): void {
    if (this.#stream !== undefined || this.#refused) return;
    this.#refused = true;
    this.#error = err;
    this.#drain();
    this.#settle.reject(err);
  }

  #drain(): void {
    const backlog = this.#backlog;
    this.#backlog = [];
    for (const op of backlog) op();
  }
}

export class Client {
  readonly #channel: Channel;
  readonly #calls = new Map<number, ClientStream>();
  readonly #interceptors: readonly ClientInterceptor[];
  readonly #forget = (s: ClientStream) => {
    if (this.#calls.get(s.id) === s) this.#calls.delete(s.id);
  };
  #nextId = 1;
  #closeError: TtrpcError | undefined;
  #socketError: Error | undefined;
  #closeCallbacks: ((err: Error | undefined) => void)[] = [];
  readonly #closed: Promise<void>;
  #resolveClosed!: () => void;

  /** Opens a connection to a ttrpc server at a unix socket path (or a "unix://" address). */
  static async connect(address: string, opts: ConnectOptions = {}): Promise<Client> {
    const socket = await connectUnix(address, { timeoutMs: opts.timeoutMs });
    return new Client(socket, opts);
  }

  /** Wraps an already connected socket, or any connected byte stream (see memoryPair()). */
  constructor(conn: Duplex, opts: ClientOptions = {}) {
    this.#interceptors = [...(opts.interceptors ?? [])];
    this.#closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    this.#channel = new Channel(
      conn,
      {
        frame: (id, type, flags, data) => this.#calls.get(id)?.onFrame(type, flags, data),
        oversize: (id, _type, _flags, length) =>
          this.#calls
            .get(id)
            ?.finish(
              new TtrpcError(
                Code.ResourceExhausted,
                `ttrpc: received message of ${length} bytes exceeds ${MAX_DATA_LENGTH}`,
              ),
            ),
        protocolError: (err) => this.#channel.destroy(err),
      },
      (err) => this.#onChannelClose(err),
    );
    this.#channel.start();
  }

  /** False once the connection is closed (by either side). */
  get connected(): boolean {
    return !this.#channel.closed && this.#closeError === undefined;
  }

  /** Number of calls waiting for their end. */
  get pending(): number {
    return this.#calls.size;
  }

  /** Called once when the connection closes, with the socket error if there was one. */
  onClose(cb: (err: Error | undefined) => void): void {
    if (this.#channel.closed) queueMicrotask(() => cb(this.#socketError));
    else this.#closeCallbacks.push(cb);
  }

  /** Closes the connection; pending calls fail with Unavailable. Resolves once it is closed. */
  close(): Promise<void> {
    this.#closeError ??= new TtrpcError(Code.Unavailable, "ttrpc: client closed");
    this.#channel.destroy();
    return this.#closed;
  }

  /** A unary call with raw payloads. */
  call(service: string, method: string, payload: Uint8Array, opts?: CallOptions): Promise<Uint8Array> {
    if (this.#interceptors.length === 0) return this.#unary(service, method, payload, opts, undefined);
    return this.#intercepted(
      { service, method, kind: "unary", request: payload, options: opts ?? NO_OPTIONS },
      this.#unaryHandler(rawCodec, undefined),
    ) as Promise<Uint8Array>;
  }

  /** Opens a streaming call with raw payloads. `payload` is the request of a server-streaming call. */
  openStream(
    service: string,
    method: string,
    kind: Exclude<StreamKind, "unary">,
    payload?: Uint8Array,
    opts?: CallOptions,
  ): RawStream {
    if (this.#interceptors.length === 0) return this.#open(service, method, kind, payload, opts, undefined);
    return this.#openIntercepted(
      { service, method, kind, request: payload, options: opts ?? NO_OPTIONS },
      rawCodec,
    );
  }

  /** A typed stub for a service: one function per method, shaped by the method's stream kind. */
  service<S extends ServiceDescriptor>(desc: S): ClientStub<S> {
    const stub: Record<string, unknown> = {};
    for (const [key, m] of Object.entries(desc.methods)) {
      stub[key] = this.#stubMethod(desc.name, m);
    }
    return stub as ClientStub<S>;
  }

  #stubMethod(service: string, m: MethodDescriptor<unknown, unknown, StreamKind>): unknown {
    const reqType = m.requestType;
    const resType = m.responseType;
    const method = m.name;
    const intercepted = this.#interceptors.length > 0;
    // Without interceptors a stub encodes the request itself; with them the innermost handler
    // does, so that interceptors see (and may replace) the message rather than its bytes.
    const openTyped = (
      kind: Exclude<StreamKind, "unary">,
      request: unknown,
      opts: CallOptions | undefined,
    ) =>
      intercepted
        ? this.#openIntercepted({ service, method, kind, request, options: opts ?? NO_OPTIONS }, reqType)
        : this.#open(service, method, kind, request as Uint8Array | undefined, opts, undefined);
    switch (m.kind) {
      case "unary": {
        const handler = this.#unaryHandler(reqType, resType);
        return (req: unknown, opts?: CallOptions) => {
          if (intercepted) {
            return this.#intercepted(
              { service, method, kind: "unary", request: req, options: opts ?? NO_OPTIONS },
              handler,
            );
          }
          let payload: Uint8Array;
          try {
            payload = reqType.encode(req);
          } catch (err) {
            return Promise.reject(encodeError(err));
          }
          return this.#unary(service, method, payload, opts, resType);
        };
      }
      case "server":
        return (req: unknown, opts?: CallOptions) => {
          if (intercepted) return decodingIterator(openTyped("server", req, opts).messages, resType);
          let payload: Uint8Array;
          try {
            payload = reqType.encode(req);
          } catch (err) {
            return failedIterable(encodeError(err));
          }
          return decodingIterator(openTyped("server", payload, opts).messages, resType);
        };
      case "client":
        return (opts?: CallOptions) => {
          const s = openTyped("client", undefined, opts);
          const response = s.response.then((b) => decodeReply(resType, b));
          response.catch(noop);
          return {
            send: (req: unknown) => sendEncoded(s, reqType, req),
            closeSend: () => s.closeSend(),
            response,
          };
        };
      case "bidi":
        return (opts?: CallOptions) => {
          const s = openTyped("bidi", undefined, opts);
          const messages = decodingIterator(s.messages, resType);
          return {
            send: (req: unknown) => sendEncoded(s, reqType, req),
            closeSend: () => s.closeSend(),
            [Symbol.asyncIterator]: () => messages,
          };
        };
    }
  }

  /** Runs `call` through the interceptors to `inner`; an interceptor that throws rejects the call. */
  #intercepted(call: ClientCall, inner: ClientHandler): Promise<unknown> {
    try {
      return applyInterceptors(this.#interceptors, inner)(call);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The innermost handler of unary calls: encodes the (possibly replaced) request and sends it. */
  #unaryHandler(reqType: MessageCodec<unknown>, resType: MessageCodec<unknown> | undefined): ClientHandler {
    return (c) => {
      let payload: Uint8Array;
      try {
        payload = reqType.encode(c.request);
      } catch (err) {
        return handedBack(Promise.reject(encodeError(err)));
      }
      return handedBack(this.#unary(c.service, c.method, payload, c.options, resType));
    };
  }

  /** A streaming call behind interceptors: the stream is handed out now and opens when they let it. */
  #openIntercepted(call: ClientCall, reqType: MessageCodec<unknown>): RawStream {
    const kind = call.kind as Exclude<StreamKind, "unary">;
    const pending = new PendingStream(kind);
    const inner: ClientHandler = (c) => {
      let payload: Uint8Array | undefined;
      if (kind === "server") {
        try {
          payload = reqType.encode(c.request);
        } catch (err) {
          return handedBack(Promise.reject(encodeError(err)));
        }
      }
      const ended = new Promise<unknown>((resolve, reject) => {
        const onEnd = (err: TtrpcError | undefined) => (err === undefined ? resolve(undefined) : reject(err));
        pending.open(this.#open(c.service, c.method, kind, payload, c.options, onEnd));
      });
      return handedBack(ended);
    };
    this.#intercepted(call, inner).catch((err: unknown) => pending.refuse(err));
    return pending;
  }

  /** Opens a streaming call now. */
  #open(
    service: string,
    method: string,
    kind: Exclude<StreamKind, "unary">,
    payload: Uint8Array | undefined,
    opts: CallOptions | undefined,
    onEnd: StartOptions["onEnd"],
  ): RawStream {
    let resolve: ((p: Uint8Array) => void) | undefined;
    let reject: ((e: TtrpcError) => void) | undefined;
    let response: Promise<Uint8Array> = NO_RESPONSE;
    if (kind === "client") {
      response = new Promise<Uint8Array>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      // Nobody may ever look at the response of an abandoned call: no unhandled rejection.
      response.catch(noop);
    }
    const stream = this.#start({
      service,
      method,
      kind,
      // Client-streaming and bidi requests carry no payload.
      payload: kind === "server" ? payload : undefined,
      call: opts,
      resolve,
      reject,
      onEnd,
    });
    let messages = stream.messages;
    if (messages === undefined) {
      messages = new MessageQueue<Uint8Array>();
      messages.end();
    }
    return {
      id: stream.id,
      send: (p) => stream.send(p),
      closeSend: () => stream.closeSend(),
      messages,
      response,
    };
  }

  #unary(
    service: string,
    method: string,
    payload: Uint8Array,
    opts: CallOptions | undefined,
    decoder: MessageCodec<unknown> | undefined,
    // biome-ignore lint/suspicious/noExplicitAny: the typed stub narrows the result
  ): Promise<any> {
    return new Promise((resolve, reject) => {
      const ok =
        decoder === undefined
          ? resolve
          : (bytes: Uint8Array) => {
              try {
                resolve(decoder.decode(bytes));
              } catch (err) {
                reject(
                  new TtrpcError(Code.Internal, "ttrpc: cannot decode response payload", { cause: err }),
                );
              }
            };
      this.#start({ service, method, kind: "unary", payload, call: opts, resolve: ok, reject });
    });
  }

  /** Registers a call and sends its Request frame; a call that cannot start is finished with the reason. */
  #start(o: StartOptions): ClientStream {
    const id = this.#nextId;
    const stream = new ClientStream(id, o, this.#channel, this.#forget);
    const fail = (err: TtrpcError) => {
      stream.finish(err);
      return stream;
    };
    if (!this.connected) {
      return fail(this.#closeError ?? new TtrpcError(Code.Unavailable, "ttrpc: connection closed"));
    }
    const signal = o.call?.signal;
    if (signal?.aborted) return fail(abortError(signal));
    if (id > 0xffffffff)
      return fail(new TtrpcError(Code.Unavailable, "ttrpc: stream ids exhausted on this connection"));
    const timeoutMs = o.call?.timeoutMs;
    let request: Uint8Array;
    try {
      request = encodeRequest({
        service: o.service,
        method: o.method,
        payload: o.payload,
        timeoutNano: timeoutMs === undefined ? 0 : Math.max(1, Math.round(timeoutMs * 1e6)),
        metadata: toKeyValues(o.call?.metadata),
      });
    } catch (err) {
      return fail(new TtrpcError(Code.InvalidArgument, "ttrpc: cannot encode request", { cause: err }));
    }
    if (request.length > MAX_DATA_LENGTH) {
      // Go ttrpc refuses locally too (OversizedMessageError): the server would only discard it.
      return fail(
        new TtrpcError(
          Code.ResourceExhausted,
          `ttrpc: request of ${request.length} bytes exceeds ${MAX_DATA_LENGTH}`,
        ),
      );
    }
    this.#nextId += 2;
    this.#calls.set(id, stream);
    stream.watch(timeoutMs, signal);
    this.#channel.writer.frame(id, MessageType.Request, requestFlags(o.kind), request);
    return stream;
  }

  #onChannelClose(err: Error | undefined): void {
    this.#socketError = err;
    this.#closeError ??= new TtrpcError(Code.Unavailable, "ttrpc: connection closed", { cause: err });
    const closeErr = this.#closeError;
    for (const stream of [...this.#calls.values()]) stream.finish(closeErr);
    this.#calls.clear();
    const cbs = this.#closeCallbacks;
    this.#closeCallbacks = [];
    for (const cb of cbs) {
      try {
        cb(err);
      } catch {
        // A failing callback must not keep the others from running.
      }
    }
    this.#resolveClosed();
  }
}

function encodeError(err: unknown): TtrpcError {
  return new TtrpcError(Code.InvalidArgument, "ttrpc: cannot encode request message", { cause: err });
}

function decodeReply(codec: MessageCodec<unknown>, bytes: Uint8Array): unknown {
  try {
    return codec.decode(bytes);
  } catch (err) {
    throw new TtrpcError(Code.Internal, "ttrpc: cannot decode response payload", { cause: err });
  }
}

function sendEncoded(s: RawStream, codec: MessageCodec<unknown>, req: unknown): Promise<void> {
  let payload: Uint8Array;
  try {
    payload = codec.encode(req);
  } catch (err) {
    return Promise.reject(encodeError(err));
  }
  return s.send(payload);
}

function failedIterable(err: TtrpcError): AsyncIterable<never> {
  const q = new MessageQueue<never>();
  q.fail(err);
  return q;
}

/** Maps a stream of payloads to decoded messages without an async generator's extra promise hops. */
function decodingIterator(
  src: AsyncIterableIterator<Uint8Array>,
  codec: MessageCodec<unknown>,
): AsyncIterableIterator<unknown> {
  const it: AsyncIterableIterator<unknown> = {
    next: () =>
      src.next().then((r) => {
        if (r.done) return r;
        try {
          return { value: codec.decode(r.value), done: false };
        } catch (err) {
          void src.return?.();
          throw new TtrpcError(Code.Internal, "ttrpc: cannot decode stream message", { cause: err });
        }
      }),
    return: () => src.return?.() ?? Promise.resolve({ value: undefined, done: true }),
    [Symbol.asyncIterator]: () => it,
  };
  return it;
}
