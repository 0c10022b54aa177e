// The daemon's event bus: shims' events (Events/Forward) and the daemon's own (/containers/…,
// /tasks/exit for a shim found dead) go to every subscriber whose filters match, in the order
// they were published. A subscriber that does not keep up is dropped rather than allowed to
// grow the daemon's memory without bound.
import type { eventsapi } from "@tsrunc/protocol/daemon";
import { Code, TtrpcError } from "@tsrunc/ttrpc";

export type Envelope = eventsapi.Envelope;
export type EnvelopeFilter = (e: Envelope) => boolean;

/** Envelopes a subscriber may have waiting before it is cut off. */
const maxBacklog = 4096;

export interface Subscription extends AsyncIterable<Envelope> {
  close(): void;
}

export class EventExchange {
  readonly #subscribers = new Set<Subscriber>();

  publish(envelope: Envelope): void {
    for (const s of this.#subscribers) s.offer(envelope);
  }

  subscribe(filter: EnvelopeFilter, signal?: AbortSignal): Subscription {
    const s = new Subscriber(filter, () => this.#subscribers.delete(s));
    this.#subscribers.add(s);
    if (signal) {
      if (signal.aborted) s.close();
      else signal.addEventListener("abort", () => s.close(), { once: true });
    }
    return s;
  }

  /**
   * Ends every subscription with Unavailable: a Subscribe stream never ends by itself, so a
   * stopping daemon would otherwise wait out its whole shutdown grace period for each one.
   */
  closeAll(message: string): void {
    for (const s of this.#subscribers) s.close(new TtrpcError(Code.Unavailable, message));
  }

  get subscriberCount(): number {
    return this.#subscribers.size;
  }
}

class Subscriber implements Subscription {
  readonly #queue: Envelope[] = [];
  #wake: (() => void) | undefined;
  #closed = false;
  #failure: TtrpcError | undefined;

  constructor(
    private readonly filter: EnvelopeFilter,
    private readonly onClose: () => void,
  ) {}

  offer(e: Envelope): void {
    if (this.#closed) return;
    let match = false;
    try {
      match = this.filter(e);
    } catch {
      match = false;
    }
    if (!match) return;
    if (this.#queue.length >= maxBacklog) {
      this.close(new TtrpcError(Code.ResourceExhausted, "event subscriber fell too far behind"));
      return;
    }
    this.#queue.push(e);
    this.#wake?.();
  }

  /** Ends the subscription: quietly, or with `failure` once what is queued has been read. */
  close(failure?: TtrpcError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#failure = failure;
    this.onClose();
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Envelope> {
    try {
      for (;;) {
        const next = this.#queue.shift();
        if (next) {
          yield next;
          continue;
        }
        if (this.#closed) {
          if (this.#failure) throw this.#failure;
          return;
        }
        await new Promise<void>((r) => {
          this.#wake = r;
        });
        this.#wake = undefined;
      }
    } finally {
      this.close();
    }
  }
}
