// A queue between callbacks (a pull's progress) and a server stream's async generator: push()
// never blocks the producer; the consumer awaits next(). Progress of one blob is throttled to one
// message per interval (the latest one wins); changes of status always pass.

export class AsyncQueue<T> {
  readonly #items: T[] = [];
  #wake: (() => void) | undefined;
  #ended = false;

  push(item: T): void {
    this.#items.push(item);
    this.#wake?.();
  }

  end(): void {
    this.#ended = true;
    this.#wake?.();
  }

  async *drain(): AsyncGenerator<T> {
    for (;;) {
      while (this.#items.length > 0) yield this.#items.shift() as T;
      if (this.#ended) return;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
  }
}

/** Lets through at most one "same status" message per key and interval. */
export class Throttle {
  readonly #last = new Map<string, { at: number; status: string }>();
  constructor(private readonly intervalMs = 100) {}

  pass(key: string, status: string, now = Date.now()): boolean {
    const prev = this.#last.get(key);
    if (prev && prev.status === status && now - prev.at < this.intervalMs) return false;
    this.#last.set(key, { at: now, status });
    return true;
  }
}
