// stdout/stderr given as a logging URI instead of fifos (containerd's `--log-uri`):
//
// - file:///path — output is appended to that file (created 0644 with its directory); the file
//   is handed straight to runc for both stdout and stderr, so nothing is copied.
// - binary:///path/to/logger?key=value&… — the logger program runs as our child with the
//   container's stdout pipe as fd 3, stderr pipe as fd 4 and a readiness pipe as fd 5, env
//   CONTAINER_ID and CONTAINER_NAMESPACE, and the query's keys and values as arguments in
//   order. It closes fd 5 when it is ready; the container is created only after that. Its input
//   ends when the container's processes have all exited, and then it exits by itself.
//
// stdin, if any, is still a fifo and handled as usual.
import { spawn } from "node:child_process";
import { constants, mkdirSync, openSync } from "node:fs";
import { Socket } from "node:net";
import { dirname } from "node:path";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { closeQuietly, ProcessIO } from "./stdio.js";
import type { ChildFd, MakePipe, StdioHandle, StdioPaths } from "./stdio-handle.js";

/** How long a logger may take to close fd 5 (TSRUNC_LOGGER_READY_MS overrides, for tests). */
export function loggerReadyTimeoutMs(): number {
  return Number(process.env.TSRUNC_LOGGER_READY_MS) || 10_000;
}

export function isLogUri(s: string): boolean {
  return s.startsWith("file://") || s.startsWith("binary://");
}

function parse(uri: string): URL {
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    throw new TtrpcError(Code.InvalidArgument, `invalid log URI ${JSON.stringify(uri.slice(0, 200))}`);
  }
  if (!u.pathname.startsWith("/") || u.pathname.includes("\0") || u.host) {
    throw new TtrpcError(Code.InvalidArgument, `log URI must name an absolute path: ${uri.slice(0, 200)}`);
  }
  return u;
}

export class LogUriIO implements StdioHandle {
  readonly childStdio: [ChildFd, ChildFd, ChildFd];
  readonly #stdin: ProcessIO;
  #ours: number[];

  private constructor(stdin: ProcessIO, out: number, err: number) {
    this.#stdin = stdin;
    this.childStdio = [stdin.childStdio[0], out, err];
    this.#ours = [...new Set([out, err])];
  }

  static async open(
    paths: StdioPaths,
    makePipe: MakePipe,
    ids: { containerId: string; namespace: string },
  ): Promise<LogUriIO> {
    const u = parse(paths.stdout);
    const stdin = ProcessIO.open({ ...paths, stdout: "", stderr: "" }, makePipe);
    try {
      if (u.protocol === "file:") {
        const path = decodeURIComponent(u.pathname);
        mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
        const fd = openSync(
          path,
          constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW,
          0o644,
        );
        return new LogUriIO(stdin, fd, fd);
      }
      return await LogUriIO.#startLogger(u, stdin, makePipe, ids);
    } catch (err) {
      stdin.close();
      if (err instanceof TtrpcError) throw err;
      throw new TtrpcError(Code.Unknown, `log URI ${paths.stdout.slice(0, 200)}: ${(err as Error).message}`);
    }
  }

  static async #startLogger(
    u: URL,
    stdin: ProcessIO,
    makePipe: MakePipe,
    ids: { containerId: string; namespace: string },
  ): Promise<LogUriIO> {
    const [outR, outW] = makePipe();
    const [errR, errW] = makePipe();
    const [readyR, readyW] = makePipe();
    const args: string[] = [];
    for (const [k, v] of u.searchParams) args.push(k, ...(v ? [v] : []));
    const child = spawn(decodeURIComponent(u.pathname), args, {
      // Node gives the numbered entries to the child as fds 3, 4 and 5.
      stdio: ["ignore", "ignore", "ignore", outR, errR, readyW],
      env: { ...process.env, CONTAINER_ID: ids.containerId, CONTAINER_NAMESPACE: ids.namespace },
    });
    const logger = new Promise<{ exitCode?: number }>((resolve) => {
      child.once("error", () => resolve({}));
      child.once("exit", (code) => resolve(code === null ? {} : { exitCode: code }));
    });
    for (const fd of [outR, errR, readyW]) closeQuietly(fd);
    try {
      await waitReady(readyR, logger);
    } catch (err) {
      child.kill("SIGKILL");
      for (const fd of [outW, errW]) closeQuietly(fd);
      throw err;
    }
    return new LogUriIO(stdin, outW, errW);
  }

  async afterCreate(): Promise<void> {
    await this.#stdin.afterCreate();
    for (const fd of this.#ours) closeQuietly(fd);
    this.#ours = [];
  }

  closeStdin(): void {
    this.#stdin.closeStdin();
  }

  resize(): void {}

  processExited(): void {
    this.#stdin.processExited();
  }

  close(): void {
    this.#stdin.close();
    for (const fd of this.#ours) closeQuietly(fd);
    this.#ours = [];
  }
}

/** Resolves when the logger closes fd 5; fails if it exits first or takes too long. */
function waitReady(readyR: number, logger: Promise<{ exitCode?: number }>): Promise<void> {
  const ready = new Socket({ fd: readyR, readable: true, writable: false });
  return new Promise<void>((resolve, reject) => {
    const ms = loggerReadyTimeoutMs();
    const timer = setTimeout(() => done(new Error(`logger not ready after ${ms} ms`)), ms);
    const done = (err?: Error) => {
      clearTimeout(timer);
      ready.destroy();
      if (err) reject(err);
      else resolve();
    };
    ready.on("data", () => {}); // a logger may also write a byte; readiness is the close
    ready.on("end", () => done());
    ready.on("error", (e) => done(e));
    logger.then((r) => done(new Error(`logger exited (${r.exitCode ?? "signal"}) before it was ready`)));
  });
}
