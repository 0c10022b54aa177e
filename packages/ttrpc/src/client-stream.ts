// The client side of one call: a stream registered on the connection until its end (unary
// calls included), and the stand-in handed out for a streaming call that client interceptors
// have not let open yet. client.ts creates both.

import type { Channel } from "./channel.js";
import type { CallOptions, RawStream } from "./client.js";
import { Flags, MAX_DATA_LENGTH, MessageType } from "./frame-codec.js";
import type { FrameWriter } from "./frame-writer.js";
import { MessageQueue } from "./message-queue.js";
import { decodeResponse, type Response } from "./messages.js";
import type { StreamKind } from "./service.js";
import { Code, TtrpcError } from "./status.js";

const RESOLVED = Promise.resolve();
const MAX_TIMER_MS = 0x7fffffff;
/** RawStream.response of server and bidi streams, which have no single response. */
export const NO_RESPONSE: Promise<Uint8Array> = Promise.resolve(new Uint8Array(0));
export const noop = () => {};
const DONE: Promise<IteratorResult<Uint8Array>> = Promise.resolve({ value: undefined, done: true });

/** Why an aborted signal ended a call: AbortSignal.timeout() is a deadline, anything else a cancel. */
export function abortError(signal: AbortSignal): TtrpcError {
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
export interface StartOptions {
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
export function requestFlags(kind: StreamKind): number {
  // Unary: none. Server streaming: remote-closed, the client sends nothing after the request.
  // Client and bidi streaming: remote-open, data frames follow (and the Request has no payload).
  return kind === "unary" ? 0 : kind === "server" ? Flags.RemoteClosed : Flags.RemoteOpen;
}

/** One open stream: a unary call, or a streaming call's client side. */
export class ClientStream {
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
export class PendingStream implements RawStream {
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
    if (this.#stream !== undefined || this.#refused) {
      // An interceptor called next() again: nobody will read this second stream.
      void stream.messages.return?.();
      stream.closeSend();
      return;
    }
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
