// Batches outgoing frames into few socket writes. A write syscall costs far more than copying a
// hundred bytes, and under load many frames (responses of concurrent calls, a burst of
// requests) are produced within one turn of the event loop. So small frames are copied back to
// back into a shared block and flushed together once the turn is over (setImmediate runs after
// the I/O callbacks and all their promise continuations); big payloads are not copied but queued
// by reference and written with the rest in one corked writev.

import type { Duplex } from "node:stream";
import { HEADER_LENGTH, writeHeader } from "./frame-codec.js";

/** Payloads up to this size are copied into the block; larger ones are written by reference. */
const COPY_LIMIT = 8 * 1024;
/** Size of a copy block; a fresh block is started when the current one is full. */
const BLOCK_SIZE = 64 * 1024;
/**
 * Flush at once rather than at the end of the turn when this much is queued: a producer that
 * never yields to the event loop (an async generator resolving synchronously) must still reach
 * the socket, and its write() return value is what tells it to wait for 'drain'.
 */
const FLUSH_THRESHOLD = 128 * 1024;

export class FrameWriter {
  private block: Buffer = Buffer.allocUnsafeSlow(BLOCK_SIZE);
  /** Start of the part of `block` not yet handed to `pieces`. */
  private blockStart = 0;
  private blockFill = 0;
  private pieces: Uint8Array[] = [];
  private queuedBytes = 0;
  private scheduled = false;
  private drainWaiters: (() => void)[] = [];
  private closed = false;
  private readonly flushBound = () => this.flush();

  constructor(private readonly socket: Duplex) {
    const wake = () => this.wakeDrainWaiters();
    socket.on("drain", wake);
    socket.once("close", () => {
      this.closed = true;
      this.pieces = [];
      wake();
    });
  }

  /**
   * Queues one frame. `data` is not copied when large, so the caller must not modify it
   * afterwards (encoders return fresh buffers, which is all we pass here).
   */
  frame(streamId: number, type: number, flags: number, data?: Uint8Array): void {
    if (this.closed) return;
    const len = data === undefined ? 0 : data.length;
    if (len <= COPY_LIMIT) {
      const at = this.reserve(HEADER_LENGTH + len);
      writeHeader(this.block, at, len, streamId, type, flags);
      if (len > 0) this.block.set(data!, at + HEADER_LENGTH);
    } else {
      const at = this.reserve(HEADER_LENGTH);
      writeHeader(this.block, at, len, streamId, type, flags);
      this.cut();
      this.pieces.push(data!);
    }
    this.queuedBytes += HEADER_LENGTH + len;
    if (this.queuedBytes >= FLUSH_THRESHOLD) {
      this.flush();
    } else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushBound);
    }
  }

  /** True when the producer of a stream should wait for drained() before sending more. */
  get needsDrain(): boolean {
    return !this.closed && this.socket.writableNeedDrain;
  }

  /** Resolves when the socket has drained (or closed: waiting on a dead socket must not hang). */
  drained(): Promise<void> {
    if (!this.needsDrain) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Writes everything queued now. */
  flush(): void {
    this.scheduled = false;
    this.cut();
    const pieces = this.pieces;
    if (pieces.length === 0) return;
    this.pieces = [];
    this.queuedBytes = 0;
    if (this.closed || this.socket.destroyed || this.socket.writableEnded) return;
    if (pieces.length === 1) {
      this.socket.write(pieces[0]!);
      return;
    }
    // Corked writes leave as a single writev.
    this.socket.cork();
    for (const p of pieces) this.socket.write(p);
    this.socket.uncork();
  }

  /** Returns the offset in `this.block` where `n` bytes may be written. */
  private reserve(n: number): number {
    if (this.blockFill + n > this.block.length) {
      this.cut();
      this.block = Buffer.allocUnsafeSlow(Math.max(BLOCK_SIZE, n));
      this.blockStart = 0;
      this.blockFill = 0;
    }
    const at = this.blockFill;
    this.blockFill += n;
    return at;
  }

  /** Moves the filled, unqueued part of the block to the piece list; it is never written again. */
  private cut(): void {
    if (this.blockFill > this.blockStart) {
      this.pieces.push(this.block.subarray(this.blockStart, this.blockFill));
      this.blockStart = this.blockFill;
    }
  }

  private wakeDrainWaiters(): void {
    const waiters = this.drainWaiters;
    if (waiters.length === 0) return;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}
