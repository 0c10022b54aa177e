// A duplex stream over a pty master (or any pollable fd) that loses no output at the end.
//
// tty.ReadStream would do, but libuv ends a stream on POLLHUP after a short read, and a pty
// master hands out at most ~4 KiB per read while more is queued: the tail of a container's
// output would be lost when its last slave fd closes. Here we read the non-blocking fd
// ourselves, until EAGAIN (then wait for readiness on the libuv loop) and until EIO, which is
// how a pty master says that every slave fd is closed: the end of the stream.
import { closeSync, readSync, writeSync } from "node:fs";
import { Duplex } from "node:stream";
import { addon } from "./addon.js";

const READ_SIZE = 64 * 1024;

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Takes ownership of fd (sets O_NONBLOCK; closes it when the stream is destroyed) and returns
 * it as a Duplex: what the pty's slave side writes comes out, what you write goes in. The
 * readable side ends at EIO or EOF; as a pty cannot be half-closed the writable side then
 * ends too, and the stream closes.
 */
export function openPty(fd: number): PtyStream {
  return new PtyStream(fd);
}

export class PtyStream extends Duplex {
  readonly fd: number;
  readonly #poll: InstanceType<ReturnType<typeof addon>["FdPoll"]>;
  #wantRead = false;
  #inRead = false;
  #pending: { chunk: Buffer; callback: (error?: Error | null) => void } | undefined;

  constructor(fd: number) {
    super({ allowHalfOpen: false, decodeStrings: true });
    this.fd = fd;
    this.#poll = new (addon().FdPoll)(fd, (error, readable, writable) =>
      this.#onEvent(error, readable, writable),
    );
  }

  /** TIOCSWINSZ: the Task API's ResizePty. */
  resize(rows: number, cols: number): void {
    addon().setWindowSize(this.fd, rows, cols);
  }

  override _read(): void {
    this.#wantRead = true;
    this.#readSome();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.#pending = { chunk, callback };
    this.#writeSome();
  }

  override _final(callback: (error?: Error | null) => void): void {
    callback(); // nothing to half-close on a pty
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#poll.close(); // stops polling synchronously, so the fd may be closed now
    try {
      closeSync(this.fd);
    } catch {}
    callback(error);
  }

  #onEvent(error: Error | null, readable: boolean, writable: boolean): void {
    if (this.destroyed) return;
    if (error) {
      // POLLERR: libuv stopped the poll. Read what is left; if that does not end us, fail.
      this.#readSome();
      if (!this.destroyed && !this.readableEnded) this.destroy(error);
      return;
    }
    if (readable) this.#readSome();
    if (writable) this.#writeSome();
  }

  #readSome(): void {
    if (this.#inRead) return; // push() may call back into _read()
    this.#inRead = true;
    try {
      while (this.#wantRead && !this.destroyed) {
        const buffer = Buffer.allocUnsafe(READ_SIZE);
        let n: number;
        try {
          n = readSync(this.fd, buffer, 0, READ_SIZE, null);
        } catch (error) {
          const code = errorCode(error);
          if (code === "EAGAIN" || code === "EWOULDBLOCK") break;
          if (code === "EINTR") continue;
          if (code === "EIO")
            n = 0; // pty: no slave fd open any more, the buffer is drained
          else {
            this.destroy(error as Error);
            return;
          }
        }
        if (n === 0) {
          this.#wantRead = false;
          this.push(null);
          break;
        }
        this.#wantRead = this.push(n === READ_SIZE ? buffer : buffer.subarray(0, n));
      }
    } finally {
      this.#inRead = false;
    }
    this.#arm();
  }

  #writeSome(): void {
    const pending = this.#pending;
    if (!pending || this.destroyed) return;
    while (pending.chunk.length > 0) {
      try {
        pending.chunk = pending.chunk.subarray(writeSync(this.fd, pending.chunk));
      } catch (error) {
        const code = errorCode(error);
        if (code === "EINTR") continue;
        if (code !== "EAGAIN" && code !== "EWOULDBLOCK") {
          this.#pending = undefined;
          pending.callback(error as Error);
        }
        this.#arm(); // EAGAIN: wait until writable
        return;
      }
    }
    this.#pending = undefined;
    this.#arm();
    pending.callback();
  }

  #arm(): void {
    if (!this.destroyed) this.#poll.start(this.#wantRead, this.#pending !== undefined);
  }
}
