// One accepted connection on the server: the frame rules a client must follow, and the
// bookkeeping of its open streams. Running a call is server-dispatch.ts's.
//
// A frame that breaks the protocol (stream id 0 or even, a reused or decreasing id, data on a
// unary stream or after the peer closed its side, data on a stream never opened, a Response or
// an unknown message type from the client) closes this connection only. Oversized frames,
// undecodable requests, unknown methods and streams over the cap are answered on their own
// stream and the connection carries on.

import type { Duplex } from "node:stream";
import type { PeerCredentials } from "./call-context.js";
import { Channel } from "./channel.js";
import { Flags, MAX_DATA_LENGTH, MessageType } from "./frame-codec.js";
import type { FrameWriter } from "./frame-writer.js";
import type { ServerInterceptor } from "./interceptor.js";
import type { QueueHooks } from "./message-queue.js";
import { decodeRequest, encodeResponse, type Request } from "./messages.js";
import { decodeMessage, dispatch, UNDECODABLE } from "./server-dispatch.js";
import { type Registered, ServerStream } from "./server-stream.js";
import { Code, TtrpcError } from "./status.js";

/** What a connection needs of its server. */
export interface ConnectionHost {
  /** Streams one connection may have open at once. */
  readonly maxStreams: number;
  readonly interceptors: readonly ServerInterceptor[];
  shuttingDown(): boolean;
  /** The registered method, or the Unimplemented error to answer with. */
  lookup(service: string, method: string): Registered | TtrpcError;
  /** Connection-level trouble, for the server's onError. */
  report(err: Error): void;
  closed(conn: ServerConnection): void;
}

export class ServerConnection {
  readonly #host: ConnectionHost;
  readonly #channel: Channel;
  readonly #streams = new Map<number, ServerStream>();
  readonly #peer: PeerCredentials | undefined;
  #lastStreamId = 0;
  #closed = false;

  constructor(host: ConnectionHost, conn: Duplex, peer: PeerCredentials | undefined) {
    this.#host = host;
    this.#peer = peer;
    this.#channel = new Channel(
      conn,
      {
        frame: (id, type, flags, data) => this.#onFrame(id, type, flags, data),
        oversize: (id, type, _flags, length) => this.#onOversize(id, type, length),
        protocolError: (err) => this.#violation(err.message),
      },
      (err) => this.#onClose(err),
    );
  }

  /** Starts reading frames (after the peer check, when there is one). */
  start(): void {
    this.#channel.start();
  }

  /** The peer check said no: close without reading anything. */
  refuse(err: unknown): void {
    this.#host.report(
      new TtrpcError(Code.PermissionDenied, "ttrpc: connection refused by peer check", { cause: err }),
    );
    this.#channel.destroy();
  }

  /** Closes now; the handlers still running see their signal abort with `reason`. */
  destroy(reason: TtrpcError): void {
    this.#abortAll(reason);
    this.#channel.destroy();
  }

  /** During shutdown: close now if nothing is in flight. */
  endIfIdle(): void {
    if (this.#streams.size === 0 && !this.#closed) this.#channel.end();
  }

  // What dispatch uses.

  get writer(): FrameWriter {
    return this.#channel.writer;
  }

  get interceptors(): readonly ServerInterceptor[] {
    return this.#host.interceptors;
  }

  /** Hooks for a request stream: reading pauses while it is full, and a stuck one is failed. */
  inputHooks(stream: ServerStream): QueueHooks {
    return this.#channel.queueHooks(() =>
      this.fail(stream, new TtrpcError(Code.ResourceExhausted, "ttrpc: stream receive buffer full")),
    );
  }

  /** Ends a call with an error status (and aborts its handler if it is still running). */
  fail(stream: ServerStream, err: TtrpcError): void {
    if (stream.finished) return;
    this.#sendStatus(stream.id, err);
    stream.abort(err);
    this.finish(stream);
  }

  /** Forgets a stream whose final frame is written; the last one out closes a shutting-down connection. */
  finish(stream: ServerStream): void {
    stream.close();
    if (this.#streams.get(stream.id) === stream) this.#streams.delete(stream.id);
    if (this.#streams.size === 0 && this.#host.shuttingDown() && !this.#closed) this.#channel.end();
  }

  // Frame rules.

  #onClose(err: Error | undefined): void {
    this.#closed = true;
    // A peer that vanishes mid-write is ordinary; anything else is worth telling.
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (err !== undefined && code !== "ECONNRESET" && code !== "EPIPE") this.#host.report(err);
    this.#abortAll(new TtrpcError(Code.Canceled, "ttrpc: connection closed"));
    this.#host.closed(this);
  }

  #abortAll(reason: TtrpcError): void {
    for (const stream of this.#streams.values()) {
      stream.close();
      stream.abort(reason);
    }
    this.#streams.clear();
  }

  #violation(message: string): void {
    if (this.#closed) return;
    this.#host.report(
      new TtrpcError(Code.InvalidArgument, `ttrpc: protocol violation, closing connection: ${message}`),
    );
    this.destroy(new TtrpcError(Code.Canceled, "ttrpc: connection closed after a protocol violation"));
  }

  #onOversize(id: number, type: number, length: number): void {
    const err = new TtrpcError(
      Code.ResourceExhausted,
      `message length ${length} exceed maximum message size of ${MAX_DATA_LENGTH}`,
    );
    // An oversized Data frame ends its stream; an oversized Request never opened one. Either
    // way the answer goes on that stream id, as Go ttrpc does, and the connection carries on.
    const stream = type === MessageType.Data ? this.#streams.get(id) : undefined;
    if (stream !== undefined) this.fail(stream, err);
    else this.#sendStatus(id, err);
  }

  #onFrame(id: number, type: number, flags: number, data: Buffer): void {
    if (id === 0 || (id & 1) === 0) {
      this.#violation(`stream id ${id} is not a client stream id (odd, non-zero)`);
      return;
    }
    if (type === MessageType.Request) {
      this.#onRequest(id, flags, data);
    } else if (type === MessageType.Data) {
      this.#onData(id, flags, data);
    } else {
      this.#violation(`unexpected message type ${type} from a client on stream ${id}`);
    }
  }

  #onRequest(id: number, flags: number, data: Buffer): void {
    if (id <= this.#lastStreamId) {
      this.#violation(`stream id ${id} reused or not increasing (last ${this.#lastStreamId})`);
      return;
    }
    this.#lastStreamId = id;
    if (this.#host.shuttingDown()) {
      this.#sendStatus(id, new TtrpcError(Code.Unavailable, "ttrpc: server shutting down"));
      return;
    }
    const max = this.#host.maxStreams;
    if (this.#streams.size >= max) {
      this.#sendStatus(
        id,
        new TtrpcError(Code.ResourceExhausted, `ttrpc: too many concurrent streams (${max})`),
      );
      return;
    }
    let req: Request;
    try {
      req = decodeRequest(data);
    } catch (err) {
      this.#sendStatus(
        id,
        new TtrpcError(Code.InvalidArgument, `unmarshal request error: ${(err as Error).message}`, {
          cause: err,
        }),
      );
      return;
    }
    const reg = this.#host.lookup(req.service, req.method);
    if (reg instanceof TtrpcError) {
      this.#sendStatus(id, reg);
      return;
    }
    const stream = new ServerStream(id, reg, req, this.#peer);
    this.#streams.set(id, stream);
    dispatch(this, stream, req, flags);
  }

  #onData(id: number, flags: number, data: Buffer): void {
    const stream = this.#streams.get(id);
    if (stream === undefined) {
      // Data for a stream we already finished is a benign race (the client was still sending
      // when we answered); data for a stream never opened is not.
      if (id > this.#lastStreamId) this.#violation(`data on stream ${id}, which was never opened`);
      return;
    }
    switch (stream.inputState) {
      case "none":
        this.#violation(`data on stream ${id}, which does not stream requests`);
        return;
      case "closed-by-client":
        this.#violation(`data on stream ${id} after the client closed it`);
        return;
      case "dropped":
        return;
      case "open":
        break;
    }
    if ((flags & Flags.NoData) === 0) {
      const msg = decodeMessage(this, stream, data, "stream message");
      if (msg === UNDECODABLE) return;
      stream.receive(msg);
    }
    if ((flags & Flags.RemoteClosed) !== 0) stream.endInput();
  }

  #sendStatus(id: number, err: TtrpcError): void {
    if (this.#closed) return;
    let bytes = encodeResponse({
      status: { code: err.code, message: err.message, details: err.details as never },
    });
    if (bytes.length > MAX_DATA_LENGTH) {
      // Only huge details can do this; the code and a short message still fit.
      bytes = encodeResponse({ status: { code: err.code, message: err.message.slice(0, 1024) } });
    }
    this.#channel.writer.frame(id, MessageType.Response, 0, bytes);
  }
}
