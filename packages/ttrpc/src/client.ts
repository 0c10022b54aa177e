// The ttrpc client: many calls multiplexed on one connection, each on its own odd, increasing
// stream id. A unary call is one Request frame out and one Response frame back; streaming calls
// follow the request/data flags of the protocol (see PROTOCOL.md in containerd/ttrpc).
//
// Deadlines travel to the server as timeout_nano and are also enforced here, because the server
// is free to ignore them and ttrpc has no cancel frame: a call that gives up locally simply
// forgets its stream, and a late response for it is dropped.

import type { Socket } from "node:net";
import { Channel } from "./channel.js";
import { Flags, MAX_DATA_LENGTH, MessageType } from "./frame-codec.js";
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

export interface ConnectOptions {
  /** Give up connecting after this long. */
  timeoutMs?: number;
}

/** The raw (bytes) side of a streaming call; the typed stubs wrap it. */
export interface RawStream {
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

/** One open stream: a unary call, or a streaming call's client side. */
class ClientCall {
  done = false;
  localClosed: boolean;
  error: TtrpcError | undefined;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** Server and bidi streaming: received messages. */
  queue: MessageQueue<Uint8Array> | undefined;

  constructor(
    readonly client: Client,
    readonly id: number,
    readonly kind: StreamKind,
    /** Unary and client streaming: the single response. */
    readonly resolve: ((payload: Uint8Array) => void) | undefined,
    readonly reject: ((err: TtrpcError) => void) | undefined,
  ) {
    this.localClosed = kind === "unary" || kind === "server";
  }

  /**
   * Ends the call; `err` undefined means success (the resolve was already done). A `remote`
   * error (the server's status) still lets the consumer read the messages that preceded it; a
   * local one (deadline, cancel, connection lost) is reported at once.
   */
  finish(err: TtrpcError | undefined, remote = false): void {
    if (this.done) return;
    this.done = true;
    this.error = err;
    this.client.forget(this);
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (this.onAbort !== undefined) this.signal!.removeEventListener("abort", this.onAbort);
    if (err !== undefined) {
      this.reject?.(err);
      if (remote) this.queue?.end(err);
      else this.queue?.fail(err);
    } else {
      this.queue?.end();
    }
  }

  send(payload: Uint8Array): Promise<void> {
    if (this.localClosed) {
      return Promise.reject(
        new TtrpcError(Code.FailedPrecondition, "ttrpc: send on a stream closed for sending"),
      );
    }
    if (this.done) {
      return Promise.reject(
        this.error ?? new TtrpcError(Code.FailedPrecondition, "ttrpc: stream already finished"),
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
    const w = this.client.channel.writer;
    w.frame(this.id, MessageType.Data, 0, payload);
    return w.needsDrain ? w.drained() : RESOLVED;
  }

  closeSend(): void {
    if (this.localClosed) return;
    this.localClosed = true;
    if (!this.done)
      this.client.channel.writer.frame(this.id, MessageType.Data, Flags.RemoteClosed | Flags.NoData);
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
      if (this.resolve !== undefined) {
        this.resolve(res.payload);
      } else if (res.payload.length > 0) {
        // A streaming server may end with a Response carrying one last message.
        this.queue!.push(res.payload);
      }
      this.finish(undefined);
      return;
    }
    if (type === MessageType.Data) {
      if (this.queue === undefined) {
        this.finish(
          new TtrpcError(Code.Internal, `ttrpc: data frame on non-streaming-server stream ${this.id}`),
        );
        return;
      }
      if ((flags & Flags.NoData) === 0) this.queue.push(data);
      if ((flags & Flags.RemoteClosed) !== 0) this.finish(undefined);
    }
    // A Request from the server (server-initiated streams) is not part of the protocol yet: ignored.
  }
}

export class Client {
  /** @internal */
  readonly channel: Channel;
  private readonly calls = new Map<number, ClientCall>();
  private nextId = 1;
  private closeError: TtrpcError | undefined;
  private socketError: Error | undefined;
  private closeCallbacks: ((err: Error | undefined) => void)[] = [];
  private closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  /** Opens a connection to a ttrpc server at a unix socket path (or a "unix://" address). */
  static async connect(address: string, opts: ConnectOptions = {}): Promise<Client> {
    const socket = await connectUnix(address, opts);
    return new Client(socket);
  }

  /** Wraps an already connected socket. */
  constructor(socket: Socket) {
    this.closedPromise = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.channel = new Channel(
      socket,
      {
        frame: (id, type, flags, data) => this.calls.get(id)?.onFrame(type, flags, data),
        oversize: (id, _type, _flags, length) =>
          this.calls
            .get(id)
            ?.finish(
              new TtrpcError(
                Code.ResourceExhausted,
                `ttrpc: received message of ${length} bytes exceeds ${MAX_DATA_LENGTH}`,
              ),
            ),
        protocolError: (err) => this.channel.destroy(err),
      },
      (err) => this.onChannelClose(err),
    );
    this.channel.start();
  }

  /** False once the connection is closed (by either side). */
  get connected(): boolean {
    return !this.channel.closed && this.closeError === undefined;
  }

  /** Number of calls waiting for their end. */
  get pending(): number {
    return this.calls.size;
  }

  /** Called once when the connection closes, with the socket error if there was one. */
  onClose(cb: (err: Error | undefined) => void): void {
    if (this.channel.closed) queueMicrotask(() => cb(this.socketError));
    else this.closeCallbacks.push(cb);
  }

  /** Closes the connection; pending calls fail with Unavailable. Resolves once it is closed. */
  close(): Promise<void> {
    this.closeError ??= new TtrpcError(Code.Unavailable, "ttrpc: client closed");
    this.channel.destroy();
    return this.closedPromise;
  }

  /** A unary call with raw payloads. */
  call(service: string, method: string, payload: Uint8Array, opts?: CallOptions): Promise<Uint8Array> {
    return this.unary(service, method, payload, opts, undefined);
  }

  /** Opens a streaming call with raw payloads. `payload` is the request of a server-streaming call. */
  openStream(
    service: string,
    method: string,
    kind: Exclude<StreamKind, "unary">,
    payload?: Uint8Array,
    opts?: CallOptions,
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
    // Request flags: remote-closed when the client sends nothing after the request,
    // remote-open when data frames follow. Client-streaming requests carry no payload.
    const flags = kind === "server" ? Flags.RemoteClosed : Flags.RemoteOpen;
    const call = this.start(
      service,
      method,
      kind,
      kind === "server" ? payload : undefined,
      flags,
      opts,
      resolve,
      reject,
    );
    if (kind !== "client" && call.queue === undefined) {
      // The call failed before it started: present the failure to whoever iterates.
      const q = new MessageQueue<Uint8Array>();
      q.fail(call.error);
      call.queue = q;
    }
    const empty = kind === "client" ? new MessageQueue<Uint8Array>() : undefined;
    empty?.end();
    return {
      id: call.id,
      send: (p) => call.send(p),
      closeSend: () => call.closeSend(),
      messages: call.queue ?? empty!,
      response,
    };
  }

  /** A typed stub for a service: one function per method, shaped by the method's stream kind. */
  service<S extends ServiceDescriptor>(desc: S): ClientStub<S> {
    const stub: Record<string, unknown> = {};
    for (const [key, m] of Object.entries(desc.methods)) {
      stub[key] = this.stubMethod(desc.name, m);
    }
    return stub as ClientStub<S>;
  }

  /** @internal */
  forget(call: ClientCall): void {
    if (this.calls.get(call.id) === call) this.calls.delete(call.id);
  }

  private stubMethod(service: string, m: MethodDescriptor<unknown, unknown, StreamKind>): unknown {
    const reqType = m.requestType;
    const resType = m.responseType;
    switch (m.kind) {
      case "unary":
        return (req: unknown, opts?: CallOptions) => {
          let payload: Uint8Array;
          try {
            payload = reqType.encode(req);
          } catch (err) {
            return Promise.reject(encodeError(err));
          }
          return this.unary(service, m.name, payload, opts, resType);
        };
      case "server":
        return (req: unknown, opts?: CallOptions) => {
          let payload: Uint8Array;
          try {
            payload = reqType.encode(req);
          } catch (err) {
            return failedIterable(encodeError(err));
          }
          return decodingIterator(
            this.openStream(service, m.name, "server", payload, opts).messages,
            resType,
          );
        };
      case "client":
        return (opts?: CallOptions) => {
          const s = this.openStream(service, m.name, "client", undefined, opts);
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
          const s = this.openStream(service, m.name, "bidi", undefined, opts);
          const messages = decodingIterator(s.messages, resType);
          return {
            send: (req: unknown) => sendEncoded(s, reqType, req),
            closeSend: () => s.closeSend(),
            [Symbol.asyncIterator]: () => messages,
          };
        };
    }
  }

  private unary(
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
      this.start(service, method, "unary", payload, 0, opts, ok, reject);
    });
  }

  /** Registers a call and sends its Request frame; a call that cannot start is finished with the reason. */
  private start(
    service: string,
    method: string,
    kind: StreamKind,
    payload: Uint8Array | undefined,
    flags: number,
    opts: CallOptions | undefined,
    resolve: ((p: Uint8Array) => void) | undefined,
    reject: ((e: TtrpcError) => void) | undefined,
  ): ClientCall {
    const id = this.nextId;
    const call = new ClientCall(this, id, kind, resolve, reject);
    const fail = (err: TtrpcError) => {
      call.finish(err);
      return call;
    };
    if (!this.connected) {
      return fail(this.closeError ?? new TtrpcError(Code.Unavailable, "ttrpc: connection closed"));
    }
    const signal = opts?.signal;
    if (signal?.aborted) return fail(abortError(signal));
    if (id > 0xffffffff)
      return fail(new TtrpcError(Code.Unavailable, "ttrpc: stream ids exhausted on this connection"));
    const timeoutMs = opts?.timeoutMs;
    let request: Uint8Array;
    try {
      request = encodeRequest({
        service,
        method,
        payload,
        timeoutNano: timeoutMs === undefined ? 0 : Math.max(1, Math.round(timeoutMs * 1e6)),
        metadata: toKeyValues(opts?.metadata),
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
    this.nextId += 2;
    if (kind === "server" || kind === "bidi") {
      call.queue = new MessageQueue<Uint8Array>(
        this.channel.queueHooks(() =>
          call.finish(new TtrpcError(Code.ResourceExhausted, "ttrpc: stream receive buffer full")),
        ),
      );
    }
    this.calls.set(id, call);
    // Node's timers cannot wait longer than 2^31-1 ms (they fire at once instead); a deadline
    // 24 days away is no deadline for a local call.
    if (timeoutMs !== undefined && timeoutMs <= MAX_TIMER_MS) {
      call.timer = setTimeout(
        () =>
          call.finish(
            new TtrpcError(Code.DeadlineExceeded, `ttrpc: ${service}/${method}: deadline exceeded`),
          ),
        timeoutMs,
      );
    }
    if (signal !== undefined) {
      call.signal = signal;
      call.onAbort = () => call.finish(abortError(signal));
      signal.addEventListener("abort", call.onAbort, { once: true });
    }
    this.channel.writer.frame(id, MessageType.Request, flags, request);
    return call;
  }

  private onChannelClose(err: Error | undefined): void {
    this.socketError = err;
    this.closeError ??= new TtrpcError(Code.Unavailable, "ttrpc: connection closed", { cause: err });
    const closeErr = this.closeError;
    for (const call of [...this.calls.values()]) call.finish(closeErr);
    this.calls.clear();
    const cbs = this.closeCallbacks;
    this.closeCallbacks = [];
    for (const cb of cbs) {
      try {
        cb(err);
      } catch {
        // A failing callback must not keep the others from running.
      }
    }
    this.resolveClosed();
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
