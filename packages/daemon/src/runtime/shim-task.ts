// One task whose shim we are connected to: its connection, its log relay, and a promise that
// settles once the daemon has finished dealing with the shim's loss (if it is ever lost).
import type { ShimConnection } from "@tsrunc/shim-contract/launcher";
import type { LogRelay } from "./bundle.js";

export class ShimTask {
  /** Set when the daemon itself closes the connection (delete, shutdown): not a loss. */
  closing = false;
  readonly #lostDone: Promise<void>;
  #settleLost!: () => void;

  constructor(
    readonly namespace: string,
    readonly id: string,
    readonly bundle: string,
    readonly binary: string,
    readonly conn: ShimConnection,
    readonly logRelay: LogRelay,
  ) {
    this.#lostDone = new Promise((r) => {
      this.#settleLost = r;
    });
  }

  get task(): ShimConnection["task"] {
    return this.conn.task;
  }

  /** Resolves after a lost shim's exit has been recorded (never, while the shim lives). */
  get lostHandled(): Promise<void> {
    return this.#lostDone;
  }

  markLostHandled(): void {
    this.#settleLost();
  }

  async close(): Promise<void> {
    this.closing = true;
    this.logRelay.close();
    await this.conn.close().catch(() => {});
  }
}
