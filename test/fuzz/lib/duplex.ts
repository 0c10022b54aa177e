// An in-memory connection for driving Server.handleConnection without a socket: the server end
// is a Duplex with the parts of net.Socket the ttrpc channel uses (data/end/close events,
// write/cork/uncork, pause/resume, destroy); the client end collects what the server writes.
import type { Socket } from "node:net";
import { Duplex } from "node:stream";

export class ServerEnd extends Duplex {
  /** Bytes the server wrote. */
  readonly written: Buffer[] = [];

  override _read(): void {}

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.written.push(Buffer.from(chunk));
    cb();
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    for (const c of chunks) this.written.push(Buffer.from(c.chunk));
    cb();
  }

  /** Delivers client bytes to the server (one 'data' event per call once flowing). */
  feed(bytes: Uint8Array): void {
    this.push(Buffer.from(bytes));
  }

  /** The client half-closes (the server sees 'end'). */
  finish(): void {
    this.push(null);
  }

  asSocket(): Socket {
    return this as unknown as Socket;
  }
}

/** Lets the event loop run `n` turns (timers excluded). */
export async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
}
