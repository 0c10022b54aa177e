// The stdio of one process (init or exec) when it has no terminal.
//
// stdout/stderr: the fifo containerd created is opened O_RDWR (never blocks, even before the
//   reader opens) and handed straight to runc, which passes it to the container process. The
//   shim closes its own copy right after runc returns, so the only writers left are the
//   container's processes: the reader sees EOF exactly when the process's output ends, and no
//   byte is copied through the shim.
// stdin: the container must not hold the fifo itself, or its own descriptor would keep the
//   fifo "open for writing" and it would never read EOF. So the shim reads the fifo and copies
//   into a pipe whose read end the process gets. The shim also holds a write end of the fifo
//   (keep-alive) so that the fifo does not report EOF before the client has opened it; CloseIO
//   drops that keep-alive, and EOF then flows to the process once the client has closed too.
import { closeSync, constants, lstatSync, openSync } from "node:fs";
import { Socket } from "node:net";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import type { ChildFd, MakePipe, StdioHandle, StdioPaths } from "./stdio-handle.js";

export function openFifo(path: string, flags: number, what: string): number {
  if (path.includes("\0") || !path.startsWith("/")) {
    throw new TtrpcError(Code.InvalidArgument, `${what} path must be absolute: ${JSON.stringify(path)}`);
  }
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path);
  } catch (err) {
    throw new TtrpcError(Code.NotFound, `${what} ${path}: ${(err as Error).message}`);
  }
  if (!st.isFIFO()) throw new TtrpcError(Code.InvalidArgument, `${what} ${path} is not a fifo`);
  return openSync(path, flags | constants.O_NOFOLLOW);
}

export class ProcessIO implements StdioHandle {
  /** What runc (and so the process) gets as fd 0, 1 and 2. */
  readonly childStdio: [ChildFd, ChildFd, ChildFd];
  readonly paths: StdioPaths;
  #childEnds: number[] = [];
  #stdinKeepAlive: number | undefined;
  #stdinReader: Socket | undefined;
  #stdinWriter: Socket | undefined;

  private constructor(paths: StdioPaths, childStdio: [ChildFd, ChildFd, ChildFd]) {
    this.paths = paths;
    this.childStdio = childStdio;
  }

  static open(paths: StdioPaths, makePipe: MakePipe): ProcessIO {
    const opened: number[] = [];
    try {
      const out: ChildFd = paths.stdout ? openFifo(paths.stdout, constants.O_RDWR, "stdout") : "ignore";
      if (typeof out === "number") opened.push(out);
      let err: ChildFd = "ignore";
      if (paths.stderr) {
        err = paths.stderr === paths.stdout ? out : openFifo(paths.stderr, constants.O_RDWR, "stderr");
        if (typeof err === "number" && err !== out) opened.push(err);
      }
      let stdin: ChildFd = "ignore";
      let reader: number | undefined;
      let keepAlive: number | undefined;
      let pipeW: number | undefined;
      if (paths.stdin) {
        reader = openFifo(paths.stdin, constants.O_RDONLY | constants.O_NONBLOCK, "stdin");
        opened.push(reader);
        keepAlive = openSync(paths.stdin, constants.O_WRONLY | constants.O_NONBLOCK);
        opened.push(keepAlive);
        const [r, w] = makePipe();
        opened.push(r, w);
        stdin = r;
        pipeW = w;
      }
      const io = new ProcessIO(paths, [stdin, out, err]);
      io.#childEnds = [stdin, out, err].filter((fd): fd is number => typeof fd === "number");
      if (reader !== undefined && pipeW !== undefined) {
        io.#stdinKeepAlive = keepAlive;
        io.#stdinReader = new Socket({ fd: reader, readable: true, writable: false });
        io.#stdinWriter = new Socket({ fd: pipeW, readable: false, writable: true });
        // Errors here mean the process or the client went away; the copy simply ends.
        io.#stdinReader.on("error", () => io.#stdinWriter?.destroy());
        io.#stdinWriter.on("error", () => io.#stdinReader?.destroy());
        io.#stdinReader.pipe(io.#stdinWriter);
      }
      return io;
    } catch (e) {
      for (const fd of new Set(opened)) closeQuietly(fd);
      throw e;
    }
  }

  async afterCreate(): Promise<void> {
    this.releaseChildEnds();
  }

  resize(): void {
    // No terminal: nothing to resize (containerd sends ResizePty only for terminals).
  }

  processExited(): void {
    // stdout/stderr need nothing (the process held the only writers); stdin's copy is moot.
    this.#stdinReader?.destroy();
    this.#stdinWriter?.destroy();
  }

  /** After runc has handed the fds to the process, the shim drops its copies of them. */
  private releaseChildEnds(): void {
    for (const fd of new Set(this.#childEnds)) closeQuietly(fd);
    this.#childEnds = [];
  }

  /** CloseIO: let stdin reach EOF once the client has closed its side. */
  closeStdin(): void {
    if (this.#stdinKeepAlive !== undefined) {
      closeQuietly(this.#stdinKeepAlive);
      this.#stdinKeepAlive = undefined;
    }
    // Without a stdin fifo there is nothing to close; with one, the copy ends on the fifo's EOF.
  }

  close(): void {
    this.releaseChildEnds();
    this.closeStdin();
    this.#stdinReader?.destroy();
    this.#stdinWriter?.destroy();
  }
}

export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
