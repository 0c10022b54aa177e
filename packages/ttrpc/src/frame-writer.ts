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
 * One copy block for every writer of the process. A daemon holds a connection per shim, mostly
 * idle: a block each was 64 KiB of external memory per connection (13 MB at 100 containers)
 * for the few hundred bytes each sends between long pauses. Sharing is safe because a byte
 * range, once reserved, is never handed out again (a full block is replaced, not rewound), and
 * each writer queues only the ranges it reserved.
 */
let sharedBlock: Buffer | undefined;
let sharedFill = 0;

/** Reserves `n` bytes of the shared block; returns the block and the offset. */
function reserveShared(n: number): Buffer {
  if (sharedBlock === undefined || sharedFill + n > sharedBlock.length) {
    sharedBlock = Buffer.allocUnsafeSlow(Math.max(BLOCK_SIZE, n));
    sharedFill = 0;
  }
  reservedAt = sharedFill;
  sharedFill += n;
  return sharedBlock;
}
/** The offset of the last reserveShared() (a second return value without an allocation). */
let reservedAt = 0;
/**
 * Flush at once rather than at the end of the turn when this much is queued: a producer that
 * never yields to the event loop (an async generator resolving synchronously) must still reach
 * the socket, and its write() return value is what tells it to wait for 'drain'.
 */
const FLUSH_THRESHOLD = 128 * 1024;

export class FrameWriter {
  /** The shared block this writer's current run of frames is in (undefined: none yet). */
  private block: Buffer | undefined;
  /** This writer's run in `block`: [blockStart, blockFill) is queued but not yet in `pieces`. */
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
      writeHeader(this.block!, at, len, streamId, type, flags);
      if (len > 0) this.block!.set(data!, at + HEADER_LENGTH);
    } else {
      const at = this.reserve(HEADER_LENGTH);
      writeHeader(this.block!, at, len, streamId, type, flags);
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

  /**
   * Reserves `n` bytes for this writer in the shared block. Consecutive reservations of one
   * writer (nothing else wrote in between, the usual case within a turn) extend its current run,
   * so a burst of small frames still leaves as one piece. Returns the offset in `this.block`.
   */
  private reserve(n: number): number {
    const block = reserveShared(n);
    const at = reservedAt;
    if (block !== this.block || at !== this.blockFill) {
      this.cut();
      this.block = block;
      this.blockStart = at;
    }
    this.blockFill = at + n;
    return at;
  }

  /** Moves this writer's unqueued run to the piece list; those bytes are never written again. */
  private cut(): void {
    if (this.block !== undefined && this.blockFill > this.blockStart) {
      this.pieces.push(this.block.subarray(this.blockStart, this.blockFill));
    }
    this.blockStart = this.blockFill;
  }

  private wakeDrainWaiters(): void {
    const waiters = this.drainWaiters;
    if (waiters.length === 0) return;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}
