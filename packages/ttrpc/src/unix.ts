// Unix socket helpers. ttrpc runs between processes on one host over unix sockets, and the
// socket file is the whole access control: whoever can connect can drive containers. So the
// socket is created 0600 inside a 0700 directory, never as an abstract socket (those ignore
// file permissions and are reachable from any process in the network namespace, including
// host-network containers: CVE-2020-15257), and a live socket is never replaced.

import { lstat, mkdir, chmod as setMode, unlink } from "node:fs/promises";
import { createServer, connect as netConnect, type Server, type Socket } from "node:net";
import { dirname } from "node:path";
import { Code, TtrpcError } from "./status.js";

/** sun_path is 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

/** Accepts "unix:///run/x.sock" (containerd's address form) as well as a bare path. */
export function socketPathOf(address: string): string {
  return address.startsWith("unix://") ? address.slice("unix://".length) : address;
}

function checkPath(path: string): void {
  if (path.length === 0) throw new TtrpcError(Code.InvalidArgument, "ttrpc: empty socket path");
  if (path.startsWith("\0") || path.startsWith("@")) {
    throw new TtrpcError(
      Code.InvalidArgument,
      `ttrpc: abstract unix sockets are not allowed: ${JSON.stringify(path)}`,
    );
  }
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new TtrpcError(
      Code.InvalidArgument,
      `ttrpc: unix socket path longer than ${MAX_SOCKET_PATH_BYTES} bytes: ${path}`,
    );
  }
}

export interface ConnectUnixOptions {
  /** Give up connecting after this long (DeadlineExceeded). */
  timeoutMs?: number;
}

/** Connects to a unix socket; failures are TtrpcErrors (Unavailable, DeadlineExceeded, …). */
export function connectUnix(address: string, opts: ConnectUnixOptions = {}): Promise<Socket> {
  const path = socketPathOf(address);
  try {
    checkPath(path);
  } catch (err) {
    return Promise.reject(err);
  }
  return new Promise((resolve, reject) => {
    const socket = netConnect({ path });
    let timer: NodeJS.Timeout | undefined;
    const fail = (err: TtrpcError) => {
      if (timer !== undefined) clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    if (opts.timeoutMs !== undefined) {
      timer = setTimeout(
        () => fail(new TtrpcError(Code.DeadlineExceeded, `ttrpc: connecting to ${path} timed out`)),
        opts.timeoutMs,
      );
    }
    socket.once("error", (err: NodeJS.ErrnoException) =>
      fail(
        new TtrpcError(Code.Unavailable, `ttrpc: cannot connect to ${path}: ${err.message}`, { cause: err }),
      ),
    );
    socket.once("connect", () => {
      if (timer !== undefined) clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
  });
}

/** Resolves true when something accepts connections on `path`, false when nothing does. */
async function isLive(path: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ path });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", (err: NodeJS.ErrnoException) => {
      s.destroy();
      // ECONNREFUSED: a socket file with no listener behind it, i.e. stale.
      // ENOENT: it vanished meanwhile; either way nobody answers.
      if (err.code === "ECONNREFUSED" || err.code === "ENOENT") resolve(false);
      else reject(err);
    });
  });
}

export interface ListenUnixOptions {
  backlog?: number;
}

/**
 * Listens on a unix socket file, creating its directory (0700) when missing. A stale socket
 * file (nothing answers on it) is removed; a live one is refused with AlreadyExists, as is any
 * other kind of file at that path. The socket file ends up 0600.
 */
export async function listenUnix(address: string, opts: ListenUnixOptions = {}): Promise<Server> {
  const path = socketPathOf(address);
  checkPath(path);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });

  const existing = await lstat(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw err;
  });
  if (existing !== undefined) {
    if (!existing.isSocket()) {
      throw new TtrpcError(Code.AlreadyExists, `ttrpc: ${path} exists and is not a socket`);
    }
    if (await isLive(path)) {
      throw new TtrpcError(Code.AlreadyExists, `ttrpc: ${path} is in use by a live server`);
    }
    await unlink(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
    });
  }

  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    // bind() runs synchronously inside listen(): a umask of 0177 makes the file 0600 from its
    // first instant, so nobody can connect in the gap before the chmod below. process.umask()
    // throws in worker threads; there the chmod alone has to do.
    let previous: number | undefined;
    try {
      previous = process.umask(0o177);
    } catch {
      previous = undefined;
    }
    try {
      server.listen({ path, backlog: opts.backlog ?? 511 }, () => {
        server.removeListener("error", reject);
        resolve();
      });
    } finally {
      if (previous !== undefined) process.umask(previous);
    }
  });
  try {
    await setMode(path, 0o600);
  } catch (err) {
    server.close();
    throw err;
  }
  return server;
}
