// A duplex stream over a pty master (runc's console) that loses no output.
//
// Why not tty.ReadStream: libuv ends a stream on POLLHUP after a short read, and a pty master
// hands out at most ~4 KiB per read while more is queued, so the tail of the output is lost;
// and a master reads EIO whenever no slave fd is open -- also before the container has opened
// its slave, which would end the stream before the container ran.
// So: we hold a slave fd of our own (TIOCGPTPEER), so that EIO never comes while the container
// lives; we read the non-blocking master ourselves, waiting for readiness on the libuv loop
// (FdPoll) when it says EAGAIN; and the shim says when the output is over -- shutdown(), once
// the process has exited, as containerd's shim does -- and we end after draining what is queued
// (the kernel flushes pending pty input before a read reports EAGAIN).
import { closeSync, readSync, writeSync } from "node:fs";
import { Duplex } from "node:stream";
import { addon } from "./addon.js";

const READ_SIZE = 64 * 1024;

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * Takes ownership of fd, a pty master (sets O_NONBLOCK; closes it when the stream is
 * destroyed), and returns it as a Duplex: what the slave side writes comes out, what you write
 * goes in. Call shutdown() when the process on the slave side has exited: the readable side
 * then ends once the queued output is read, and, as a pty cannot be half-closed, the stream
 * closes. (Given an fd that is not a pty master, e.g. a pipe, it ends at EOF or EIO by itself.)
 */
export function openPty(fd: number): PtyStream {
  return new PtyStream(fd);
}

export class PtyStream extends Duplex {
  readonly fd: number;
  readonly #poll: InstanceType<ReturnType<typeof addon>["FdPoll"]>;
  #slave = -1; // our own slave fd: no EIO while we hold it
  #shutdown = false;
  #wantRead = false;
  #inRead = false;
  #pending: { chunk: Buffer; callback: (error?: Error | null) => void } | undefined;

  constructor(fd: number) {
    super({ allowHalfOpen: false, decodeStrings: true });
    this.fd = fd;
    this.#poll = new (addon().FdPoll)(fd, (error, readable, writable) =>
      this.#onEvent(error, readable, writable),
    );
    try {
      this.#slave = addon().openPtyPeer(fd);
    } catch {} // not a pty master: EOF and EIO end the stream
  }

  /** TIOCSWINSZ: the Task API's ResizePty. */
  resize(rows: number, cols: number): void {
    addon().setWindowSize(this.fd, rows, cols);
  }

  /** The process has exited: end the readable side once what is queued has been read. */
  shutdown(): void {
    if (this.#shutdown) return;
    this.#shutdown = true;
    this.#closeSlave();
    this.#readSome();
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
    this.#closeSlave();
    try {
      closeSync(this.fd);
    } catch {}
    callback(error);
  }

  #closeSlave(): void {
    if (this.#slave < 0) return;
    try {
      closeSync(this.#slave);
    } catch {}
    this.#slave = -1;
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

  #end(): void {
    this.#wantRead = false;
    this.push(null);
  }

  #readSome(): void {
    if (this.#inRead || this.destroyed || this.readableEnded) return; // push() may re-enter
    this.#inRead = true;
    try {
      while (this.#wantRead) {
        const buffer = Buffer.allocUnsafe(READ_SIZE);
        let n: number;
        try {
          n = readSync(this.fd, buffer, 0, READ_SIZE, null);
        } catch (error) {
          const code = errorCode(error);
          if (code === "EINTR") continue;
          if (code === "EAGAIN" || code === "EWOULDBLOCK") {
            if (this.#shutdown) this.#end(); // drained
            break;
          }
          if (code === "EIO") {
            this.#end(); // no slave fd open any more (and we hold none): drained
            break;
          }
          this.destroy(error as Error);
          return;
        }
        if (n === 0) {
          this.#end();
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
