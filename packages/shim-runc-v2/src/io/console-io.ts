// The stdio of a process that has a terminal. runc creates the pty and sends its master over
// --console-socket (a unix socket we bind in a private directory before runc starts); the
// shim then copies stdin fifo → pty and pty → stdout fifo. When the process exits the pty is
// drained and the stdout fifo closed, so the client reads EOF after the last byte.
import { randomBytes } from "node:crypto";
import { constants, openSync } from "node:fs";
import { Socket } from "node:net";
import { join } from "node:path";
import { openPty, type PtyStream, receiveFd } from "@tsrunc/native";
import { socketDir } from "@tsrunc/shim-contract/socket-path";
import { closeQuietly, openFifo } from "./stdio.js";
import type { ChildFd, StdioHandle, StdioPaths } from "./stdio-handle.js";

export class ConsoleIO implements StdioHandle {
  readonly childStdio: [ChildFd, ChildFd, ChildFd] = ["ignore", "ignore", "ignore"];
  readonly consoleSocket: string;
  readonly #received: Promise<number>;
  readonly #abort: AbortController;
  readonly #paths: StdioPaths;
  #pty: PtyStream | undefined;
  #out: Socket | undefined;
  #in: Socket | undefined;
  #keepAlive: number | undefined;
  #pendingSize: [number, number] | undefined;
  #exited = false;

  private constructor(
    paths: StdioPaths,
    consoleSocket: string,
    received: Promise<number>,
    abort: AbortController,
  ) {
    this.#abort = abort;
    this.#paths = paths;
    this.consoleSocket = consoleSocket;
    this.#received = received;
  }

  /** Binds the console socket; runc must be started after this returns. */
  static open(paths: StdioPaths): ConsoleIO {
    // The socket dir is short and private (0700), so the path fits sun_path.
    const path = join(socketDir(), `pty-${randomBytes(8).toString("hex")}`);
    const abort = new AbortController();
    const received = receiveFd(path, { timeoutMs: 60_000, signal: abort.signal });
    received.catch(() => {}); // awaited in afterCreate; a failed create never awaits it
    return new ConsoleIO(paths, path, received, abort);
  }

  async afterCreate(): Promise<void> {
    const fd = await this.#received;
    const pty = openPty(fd);
    this.#pty = pty;
    pty.on("error", () => {});
    if (this.#pendingSize) pty.resize(...this.#pendingSize);
    if (this.#paths.stdout) {
      const outFd = openFifo(this.#paths.stdout, constants.O_RDWR | constants.O_NONBLOCK, "stdout");
      this.#out = new Socket({ fd: outFd, readable: false, writable: true });
      this.#out.on("error", () => pty.unpipe());
      pty.pipe(this.#out);
    } else {
      pty.resume(); // nobody reads: discard, or the process blocks on a full pty
    }
    if (this.#paths.stdin) {
      const inFd = openFifo(this.#paths.stdin, constants.O_RDONLY | constants.O_NONBLOCK, "stdin");
      this.#keepAlive = openSync(this.#paths.stdin, constants.O_WRONLY | constants.O_NONBLOCK);
      this.#in = new Socket({ fd: inFd, readable: true, writable: false });
      this.#in.on("error", () => {});
      this.#in.on("data", (d: Buffer) => {
        if (!this.#exited) pty.write(d);
      });
      // A terminal has no half-close: EOF on stdin is the EOF character, as when a user types ^D.
      this.#in.on("end", () => {
        if (!this.#exited) pty.write(Buffer.from([4]));
      });
    }
  }

  closeStdin(): void {
    if (this.#keepAlive !== undefined) closeQuietly(this.#keepAlive);
    this.#keepAlive = undefined;
  }

  resize(width: number, height: number): void {
    // ctr resizes on SIGWINCH and once more as it ends, racing the exit; the terminal of an
    // exited process has no one to tell, and its master may be closed already (EBADF). The Go
    // shim answers OK then, and so do we.
    if (this.#exited) return;
    if (this.#pty) this.#pty.resize(height, width);
    else this.#pendingSize = [height, width];
  }

  processExited(): void {
    this.#exited = true;
    this.#pty?.shutdown();
    this.closeStdin();
    this.#in?.destroy();
  }

  close(): void {
    this.#abort.abort(); // a create that failed before runc connected: unbind the socket
    this.processExited();
    this.#pty?.destroy();
    this.#out?.destroy();
  }
}
