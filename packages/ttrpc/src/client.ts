// The ttrpc client: many calls multiplexed on one connection, each on its own odd, increasing
// stream id. A unary call is one Request frame out and one Response frame back; streaming calls
// follow the request/data flags of the protocol (see PROTOCOL.md in containerd/ttrpc).
//
// Deadlines travel to the server as timeout_nano and are also enforced here, because the server
// is free to ignore them and ttrpc has no cancel frame: a call that gives up locally simply
// forgets its stream, and a late response for it is dropped.

import type { Duplex } from "node:stream";
import { Channel } from "./channel.js";
import {
  abortError,
  ClientStream,
  NO_RESPONSE,
  noop,
  PendingStream,
  requestFlags,
  type StartOptions,
} from "./client-stream.js";
import { MAX_DATA_LENGTH, MessageType } from "./frame-codec.js";
import {
  applyInterceptors,
  type ClientCall,
  type ClientHandler,
  type ClientInterceptor,
  handedBack,
} from "./interceptor.js";
import { MessageQueue } from "./message-queue.js";
import { encodeRequest } from "./messages.js";
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
