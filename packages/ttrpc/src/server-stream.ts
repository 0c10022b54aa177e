// One call on the server: its deadline, its abort signal, and for client and bidi streaming the
// queue of requests the connection feeds. The same object is the handler's CallContext, so a
// call costs one allocation here; what the connection and dispatch need of it are methods, and
// its state stays private.

import type { CallContext, PeerCredentials } from "./call-context.js";
import { MessageQueue, type QueueHooks } from "./message-queue.js";
import type { Request } from "./messages.js";
import { fromKeyValues, type IncomingMetadata } from "./metadata.js";
import type { AnyMethod } from "./service.js";
import { Code, TtrpcError } from "./status.js";

/** A method as registered: its descriptor and the implementation's handler for it. */
export interface Registered {
  service: string;
  method: AnyMethod;
  // biome-ignore lint/suspicious/noExplicitAny: handlers of every message type share this table
  handler: (...args: any[]) => any;
  impl: object;
}

/** How a data frame from the client is to be taken, given the state of the stream's input. */
export type InputState =
  /** Unary or server streaming: the client may not send data. */
  | "none"
  /** Waiting for requests. */
  | "open"
  /** The handler stopped reading, or the request stream failed: late data is dropped. */
  | "dropped"
  /** The client sent remote-closed: more data breaks the protocol. */
  | "closed-by-client";

export class ServerStream implements CallContext {
  readonly deadline: number | undefined;
  metadata: IncomingMetadata;
  #finished = false;
  #closedByClient = false;
  #input: MessageQueue<unknown> | undefined;
  #controller: AbortController | undefined;
  #abortReason: TtrpcError | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly id: number,
    readonly reg: Registered,
    req: Request,
    readonly peer: PeerCredentials | undefined,
  ) {
    this.metadata = fromKeyValues(req.metadata);
    this.deadline = req.timeoutNano > 0 ? Date.now() + req.timeoutNano / 1e6 : undefined;
  }

  get service(): string {
    return this.reg.service;
  }

  get method(): string {
    return this.reg.method.name;
  }

  /**
   * Created on first use: most unary handlers never look at it, and an AbortController plus a
   * deadline timer per call is a measurable share of a small call's cost.
   */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#abortReason !== undefined) this.#controller.abort(this.#abortReason);
      else this.armDeadline();
    }
    return this.#controller.signal;
  }

  /** The final frame is written (or the connection is gone): nothing more goes out on this stream. */
  get finished(): boolean {
    return this.#finished;
  }

  /** Streaming calls arm the deadline at once: it must also end their request stream. */
  armDeadline(): void {
    if (this.deadline === undefined || this.#timer !== undefined || this.#finished) return;
    const left = this.deadline - Date.now();
    const expire = () => this.abort(new TtrpcError(Code.DeadlineExceeded, "ttrpc: deadline exceeded"));
    if (left <= 0) expire();
    // Node's timers cannot wait longer than 2^31-1 ms (they would fire at once instead).
    else if (left <= 0x7fffffff) this.#timer = setTimeout(expire, left);
  }

  /** Tells the handler to stop: its signal aborts and its request stream fails with `reason`. */
  abort(reason: TtrpcError): void {
    if (this.#abortReason !== undefined) return;
    this.#abortReason = reason;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#input?.fail(reason);
    this.#controller?.abort(reason);
  }

  /** Marks the stream finished and releases its timer; false when it already was. */
  close(): boolean {
    if (this.#finished) return false;
    this.#finished = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    return true;
  }

  /** Client and bidi streaming: creates the request stream the handler will read. */
  openInput(hooks: QueueHooks): MessageQueue<unknown> {
    this.#input = new MessageQueue<unknown>(hooks);
    return this.#input;
  }

  get inputState(): InputState {
    const input = this.#input;
    if (input === undefined) return "none";
    if (!input.closed) return "open";
    return this.#closedByClient ? "closed-by-client" : "dropped";
  }

  /** One more request for the handler. */
  receive(msg: unknown): void {
    this.#input?.push(msg);
  }

  /** The client sent remote-closed: the handler's request stream ends after what is queued. */
  endInput(): void {
    this.#closedByClient = true;
    this.#input?.end();
  }
}
