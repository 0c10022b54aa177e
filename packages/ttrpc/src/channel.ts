// One ttrpc connection's plumbing, shared by client and server: the socket, the incremental
// frame decoder feeding a sink, the batching frame writer, and read-side backpressure.
//
// Backpressure: ttrpc has no flow-control frames, so when a stream's receive queue fills up the
// only lever is to stop reading the socket, which holds back every stream on the connection.
// Go ttrpc does the same (its receive loop blocks on a full stream channel) and gives up on that
// stream after one second; we mirror it, so one stalled consumer cannot stall the connection
// for ever.

import type { Duplex } from "node:stream";
import { FrameDecoder, type FrameSink, MAX_DATA_LENGTH } from "./frame-codec.js";
import { FrameWriter } from "./frame-writer.js";
import type { QueueHooks } from "./message-queue.js";

/** How long a full stream may hold the connection's reads before it is failed. */
export const STREAM_FULL_TIMEOUT_MS = 1000;

export class Channel {
  readonly writer: FrameWriter;
  private readonly decoder: FrameDecoder;
  private holds = 0;
  private started = false;
  private closeError: Error | undefined;
  closed = false;

  constructor(
    readonly socket: Duplex,
    sink: FrameSink,
    private readonly onClose: (err: Error | undefined) => void,
    maxDataLength = MAX_DATA_LENGTH,
  ) {
    this.decoder = new FrameDecoder(sink, maxDataLength);
    this.writer = new FrameWriter(socket);
    // An 'error' without a listener would crash the process; the 'close' that follows it is
    // where we act.
    socket.on("error", (err) => {
      this.closeError ??= err;
    });
    socket.once("close", () => {
      this.closed = true;
      this.decoder.stop();
      this.onClose(this.closeError);
    });
  }

  /** Starts reading frames (the server first checks the peer). */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.socket.on("data", (chunk: Buffer) => this.decoder.push(chunk));
    // Half-close from the peer: it will send nothing more, and ttrpc has no use for a
    // half-open connection, so close ours too.
    this.socket.on("end", () => this.destroy());
  }

  /** Stop everything at once; pending writes are dropped. */
  destroy(err?: Error): void {
    if (err !== undefined) this.closeError ??= err;
    this.decoder.stop();
    if (!this.socket.destroyed) this.socket.destroy();
  }

  /** Flush what is queued, then close (used after a graceful shutdown). */
  end(): void {
    this.writer.flush();
    if (!this.socket.destroyed) this.socket.end();
    // A peer that never closes its side must not keep the socket open.
    setTimeout(() => this.destroy(), 1000).unref();
  }

  /** Hooks for a stream's receive queue: pause reading while it is full, fail it when stuck. */
  queueHooks(onStuck: () => void, onAbandon?: () => void): QueueHooks {
    let timer: NodeJS.Timeout | undefined;
    return {
      onHigh: () => {
        this.hold();
        timer = setTimeout(onStuck, STREAM_FULL_TIMEOUT_MS);
      },
      onLow: () => {
        if (timer !== undefined) clearTimeout(timer);
        timer = undefined;
        this.release();
      },
      onAbandon,
    };
  }

  private hold(): void {
    if (this.holds++ === 0) this.socket.pause();
  }

  private release(): void {
    if (--this.holds === 0 && !this.closed) this.socket.resume();
  }
}
