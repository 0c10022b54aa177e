// Publishes task events to containerd (TTRPC_ADDRESS, Events/Forward) in the order they were
// raised. One sender drains a bounded queue: an event is retried with backoff until containerd
// takes it (containerd may be restarting), and the next event waits behind it, so the order
// create → start → exit → delete always holds on the wire. When the queue is full the oldest
// event is dropped and logged; a shim must not grow without bound while containerd is away.
import { Client, Code, TtrpcError } from "@tsrunc/ttrpc";

export interface PublishedEvent {
  topic: string;
  /** The event already packed as a google.protobuf.Any. */
  event: { typeUrl: string; value: Uint8Array };
  timestamp: Date;
}

export interface PublisherOptions {
  /** containerd's ttrpc socket path; empty means "no one listens": events are dropped. */
  address: string;
  namespace: string;
  /** Sends one event over a connected client (encodes ForwardRequest, calls Forward). */
  forward: (client: Client, namespace: string, ev: PublishedEvent) => Promise<void>;
  maxQueue?: number;
  log?: { warn: (obj: object, msg: string) => void };
}

export class EventPublisher {
  readonly #opts: Required<Omit<PublisherOptions, "log">> & Pick<PublisherOptions, "log">;
  #queue: PublishedEvent[] = [];
  #client: Client | undefined;
  #draining: Promise<void> | undefined;
  #closed = false;
  #idle: Array<() => void> = [];

  constructor(opts: PublisherOptions) {
    this.#opts = { maxQueue: 4096, ...opts };
  }

  publish(topic: string, event: PublishedEvent["event"]): void {
    if (this.#closed || !this.#opts.address) return;
    if (this.#queue.length >= this.#opts.maxQueue) {
      const dropped = this.#queue.shift();
      this.#opts.log?.warn({ topic: dropped?.topic }, "event queue full: dropped the oldest event");
    }
    this.#queue.push({ topic, event, timestamp: new Date() });
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = undefined;
      for (const f of this.#idle.splice(0)) f();
    });
  }

  /** Resolves when every queued event has been sent (or `timeoutMs` passed). */
  async flush(timeoutMs = 5000): Promise<void> {
    if (!this.#draining) return;
    await Promise.race([
      new Promise<void>((r) => this.#idle.push(r)),
      new Promise<void>((r) => setTimeout(r, timeoutMs).unref()),
    ]);
  }

  close(): void {
    this.#closed = true;
    this.#queue = [];
    this.#client?.close();
    this.#client = undefined;
  }

  async #drain(): Promise<void> {
    let backoff = 25;
    while (this.#queue.length > 0 && !this.#closed) {
      const ev = this.#queue[0]!;
      try {
        this.#client ??= await Client.connect(this.#opts.address, { timeoutMs: 2000 });
        await this.#opts.forward(this.#client, this.#opts.namespace, ev);
        if (this.#queue[0] === ev) this.#queue.shift();
        backoff = 25;
      } catch (err) {
        if (!retryable(err)) {
          // containerd answered and refused this event: retrying cannot help, and holding it
          // would block every later event.
          this.#opts.log?.warn(
            { topic: ev.topic, err: (err as Error).message },
            "containerd refused event; dropped",
          );
          if (this.#queue[0] === ev) this.#queue.shift();
          continue;
        }
        this.#client?.close();
        this.#client = undefined;
        this.#opts.log?.warn(
          { topic: ev.topic, err: (err as Error).message },
          "publishing event failed; retrying",
        );
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(backoff * 2, 2000);
      }
    }
  }
}

/** Connection failures and an unavailable or slow peer are worth a retry; a refusal is not. */
function retryable(err: unknown): boolean {
  if (!(err instanceof TtrpcError)) return true;
  return err.code === Code.Unavailable || err.code === Code.DeadlineExceeded || err.code === Code.Canceled;
}
