// The receiving half of a stream as an async iterable: the connection pushes messages as frames
// arrive, one consumer pulls them with for-await. ttrpc has no flow-control frames, so the only
// backpressure available is to stop reading the connection; the queue reports when it crosses
// its high-water mark and when it has drained, and the connection pauses and resumes its socket
// accordingly (see channel.ts).

export interface QueueHooks {
  /** The queue holds `highWaterMark` messages: stop feeding it. */
  onHigh?(): void;
  /** The queue went back under the mark (or was ended/failed/abandoned while high). */
  onLow?(): void;
  /** The consumer stopped iterating early (break, return, throw in the loop body). */
  onAbandon?(): void;
}

/** Go ttrpc's per-stream receive buffer is 64 messages; we start pushing back at the same point. */
export const DEFAULT_HIGH_WATER_MARK = 64;

export class MessageQueue<T> implements AsyncIterableIterator<T> {
  private items: T[] = [];
  private head = 0;
  private waiter: { resolve(r: IteratorResult<T>): void; reject(e: unknown): void } | null = null;
  private ended = false;
  /** Set with end(err): thrown once the queued messages are consumed. */
  private endError: unknown = undefined;
  private hasEndError = false;
  private error: unknown = undefined;
  private failed = false;
  private abandoned = false;
  private high = false;

  constructor(
    private readonly hooks: QueueHooks = {},
    private readonly highWaterMark = DEFAULT_HIGH_WATER_MARK,
  ) {}

  /** Messages waiting for the consumer. */
  get length(): number {
    return this.items.length - this.head;
  }

  /** No more messages will be pushed (ended, failed, or the consumer left). */
  get closed(): boolean {
    return this.ended || this.failed || this.abandoned;
  }

  push(item: T): void {
    if (this.closed) return;
    const w = this.waiter;
    if (w !== null) {
      this.waiter = null;
      w.resolve({ value: item, done: false });
      return;
    }
    this.items.push(item);
    if (!this.high && this.length >= this.highWaterMark) {
      this.high = true;
      this.hooks.onHigh?.();
    }
  }

  /**
   * The producer is done: the consumer sees the queued messages, then the end — or `err`, when
   * given (a stream that ended with an error status still delivers what came before it).
   */
  end(err?: unknown): void {
    if (this.closed) return;
    this.ended = true;
    if (err !== undefined) {
      this.hasEndError = true;
      this.endError = err;
    }
    this.settleWaiter();
  }

  /** Abnormal end: queued messages are dropped and the consumer's next pull throws `err`. */
  fail(err: unknown): void {
    if (this.closed) return;
    this.failed = true;
    this.error = err;
    this.items = [];
    this.head = 0;
    this.lowered();
    this.settleWaiter();
  }

  next(): Promise<IteratorResult<T>> {
    if (this.failed) return Promise.reject(this.error);
    if (this.head < this.items.length) {
      const value = this.items[this.head]!;
      this.items[this.head] = undefined as T;
      this.head++;
      if (this.head === this.items.length) {
        this.items = [];
        this.head = 0;
      } else if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
      if (this.high && this.length < this.highWaterMark >> 1) this.lowered();
      return Promise.resolve({ value, done: false });
    }
    if (this.ended && this.hasEndError) return Promise.reject(this.endError);
    if (this.ended || this.abandoned) return Promise.resolve({ value: undefined, done: true });
    if (this.waiter !== null) return Promise.reject(new Error("MessageQueue: concurrent next() calls"));
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** The consumer leaves early: drop what is queued and ignore further pushes. */
  return(): Promise<IteratorResult<T>> {
    if (!this.closed) {
      this.abandoned = true;
      this.items = [];
      this.head = 0;
      this.lowered();
      this.hooks.onAbandon?.();
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private lowered(): void {
    if (this.high) {
      this.high = false;
      this.hooks.onLow?.();
    }
  }

  private settleWaiter(): void {
    const w = this.waiter;
    if (w === null) return;
    this.waiter = null;
    if (this.failed) w.reject(this.error);
    else if (this.hasEndError) w.reject(this.endError);
    else w.resolve({ value: undefined, done: true });
  }
}
