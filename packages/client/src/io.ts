// A process's stdio as ctr provides it: the client makes fifos in a private directory, names
// them in Tasks.Create / Tasks.Exec, and copies between them and its own stdio. The shim opens
// the other ends.
//
// Layout: <root>/<namespace>/<containerId>-<random>/<processId>-stdin|-stdout|-stderr, every
// directory 0700 and the fifos 0600 (root defaults to /run/tsrunc/fifo; tsctl takes --fifo-dir
// or TSRUNC_FIFO_DIR). processId is the container id for a task's init, the exec id for an exec.
// A terminal has no stderr: the pty merges it into stdout.
//
// Reading without losing EOF: a fifo's reader sees EOF as soon as no writer is open, and before
// the process starts the shim may not hold one yet. So each reader is opened together with a
// writer of our own (a keep-alive) that is dropped only after Start: from then on the writers
// are the process's, and EOF means its output has ended. stdin is opened read-write, which never
// blocks or fails for want of a reader, and kept open until Start even when our input ends
// sooner (input buffered in a fifo is lost when no descriptor holds it); then closing it plus
// Tasks.CloseIO is what lets the process read EOF.

import { execFile } from "node:child_process";
import { closeSync, constants, openSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { Socket } from "node:net";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import type { Readable, Writable } from "node:stream";
import { promisify } from "node:util";
import { DEFAULT_FIFO_ROOT } from "./defaults.js";
import { checkIdentifier } from "./identifiers.js";

export { DEFAULT_FIFO_ROOT };

const execFileP = promisify(execFile);

/** The stdio paths of one process as Tasks.Create / Tasks.Exec take them ("" = none). */
export interface StdioPaths {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

export interface FifoSet extends StdioPaths {
  /** The directory holding the fifos (removed by removeFifoSet). */
  dir: string;
}

export interface FifoSetOptions {
  /** Default /run/tsrunc/fifo. */
  root?: string;
  namespace: string;
  containerId: string;
  /** Names the fifos; the container id (init) or the exec id. */
  processId?: string;
  /** Make a stdin fifo. */
  stdin: boolean;
  /** Terminal: stdin and stdout only. */
  terminal: boolean;
}

/** Creates the directory and fifos for one process. */
export async function createFifoSet(o: FifoSetOptions): Promise<FifoSet> {
  checkIdentifier(o.namespace, "namespace");
  checkIdentifier(o.containerId, "container id");
  const pid = checkIdentifier(o.processId ?? o.containerId, "exec id");
  const root = resolve(o.root ?? DEFAULT_FIFO_ROOT);
  const nsDir = join(root, o.namespace);
  // Directories created here are 0700 (the umask can only take bits away).
  await mkdir(nsDir, { recursive: true, mode: 0o700 });
  const dir = await mkdtemp(join(nsDir, `${o.containerId}-`));
  try {
    const set: FifoSet = {
      dir,
      stdin: o.stdin ? join(dir, `${pid}-stdin`) : "",
      stdout: join(dir, `${pid}-stdout`),
      stderr: o.terminal ? "" : join(dir, `${pid}-stderr`),
      terminal: o.terminal,
    };
    const paths = [set.stdin, set.stdout, set.stderr].filter((p) => p !== "");
    await execFileP("mkfifo", ["-m", "0600", "--", ...paths]);
    return set;
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Removes a fifo directory (nothing if it is already gone). */
export async function removeFifoSet(set: Pick<FifoSet, "dir"> | undefined): Promise<void> {
  if (set !== undefined && set.dir !== "") await rm(set.dir, { recursive: true, force: true });
}

/**
 * The fifo directory holding `path` if it is one that createFifoSet makes for this container
 * (<root>/<namespace>/<containerId>-XXXXXX), else undefined. Used to clean up after a detached
 * task, whose paths come back from Tasks.Get, without ever removing anything else.
 */
export function ownedFifoDir(
  path: string,
  o: { root?: string; namespace: string; containerId: string },
): string | undefined {
  if (path === "" || !isAbsolute(path)) return undefined;
  const dir = dirname(path);
  const nsDir = join(resolve(o.root ?? DEFAULT_FIFO_ROOT), o.namespace);
  if (dirname(dir) !== nsDir) return undefined;
  const name = basename(dir);
  const prefix = `${o.containerId}-`;
  if (!name.startsWith(prefix) || !/^[A-Za-z0-9]{6}$/.test(name.slice(prefix.length))) return undefined;
  return dir;
}

/**
 * Removes every fifo directory createFifoSet made for a container (its init's and its execs'),
 * for after its task is deleted. Returns the directories removed.
 */
export async function sweepFifoDirs(o: {
  root?: string;
  namespace: string;
  containerId: string;
}): Promise<string[]> {
  checkIdentifier(o.namespace, "namespace");
  checkIdentifier(o.containerId, "container id");
  const nsDir = join(resolve(o.root ?? DEFAULT_FIFO_ROOT), o.namespace);
  let names: string[];
  try {
    names = await readdir(nsDir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const dir = ownedFifoDir(join(nsDir, name, "x"), o);
    if (dir === undefined) continue;
    await rm(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}

export interface AttachStreams {
  /** Copied into the process's stdin (when it has a stdin fifo). */
  stdin?: Readable | undefined;
  stdout: Writable;
  stderr: Writable;
}

export interface FifoIOOptions {
  /**
   * Called once our stdin reached EOF and its fifo is closed, but not before started():
   * send Tasks.CloseIO here.
   */
  onStdinClosed?: () => void | Promise<void>;
  /** Hold our own writers on the output fifos until started() (new processes; not for attach). */
  keepAlive?: boolean;
}

/** Copies between our streams and a process's fifos. */
export class FifoIO {
  readonly #readers: Socket[] = [];
  #keepAlive: number[] = [];
  #stdin: Socket | undefined;
  #source: Readable | undefined;
  readonly #done: Promise<void>;
  #closed = false;
  #started = false;
  /** Our stdin ended; onStdinClosed waits for the process to exist (CloseIO needs it). */
  #stdinEnded = false;
  readonly #onStdinClosed: (() => void | Promise<void>) | undefined;

  private constructor(paths: StdioPaths, streams: AttachStreams, opts: FifoIOOptions) {
    this.#onStdinClosed = opts.onStdinClosed;
    const outputs: [string, Writable][] = [];
    if (paths.stdout !== "") outputs.push([paths.stdout, streams.stdout]);
    if (paths.stderr !== "") outputs.push([paths.stderr, streams.stderr]);
    const ends: Promise<void>[] = [];
    try {
      for (const [path, dest] of outputs) {
        const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
        if (opts.keepAlive) this.#keepAlive.push(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK));
        const sock = new Socket({ fd, readable: true, writable: false });
        this.#readers.push(sock);
        ends.push(
          new Promise<void>((res) => {
            sock.once("end", res);
            sock.once("close", () => res());
            sock.once("error", () => res());
          }),
        );
        sock.pipe(dest, { end: false });
      }
      if (paths.stdin !== "" && streams.stdin !== undefined) {
        const fd = openSync(paths.stdin, constants.O_RDWR | constants.O_NONBLOCK | constants.O_NOFOLLOW);
        const sock = new Socket({ fd, readable: false, writable: true });
        this.#stdin = sock;
        this.#source = streams.stdin;
        sock.on("error", () => this.#source?.unpipe(sock));
        // Our end stays open until the process has started: a fifo's buffered input is lost
        // once no descriptor holds it, and before Create the shim holds none. So no end()
        // (a net.Socket closes its descriptor after end()): at the input's end we only wait
        // for what was written to be flushed.
        const source = streams.stdin;
        const ended = () => {
          if (this.#stdinEnded) return;
          sock.write("", () => {
            this.#stdinEnded = true;
            if (this.#started) this.#stdinClosed();
          });
        };
        source.once("end", ended);
        source.once("error", ended);
        source.pipe(sock, { end: false });
      }
    } catch (err) {
      this.close();
      throw err;
    }
    this.#done = Promise.all(ends).then(() => {});
  }

  /** Opens the fifos of `paths` and starts copying. Call before the process is created. */
  static open(paths: StdioPaths, streams: AttachStreams, opts: FifoIOOptions = {}): FifoIO {
    return new FifoIO(paths, streams, opts);
  }

  /**
   * The process has started (for attach: it exists): its own writers now decide when our
   * readers see EOF, and an end of our stdin can be passed on.
   */
  started(): void {
    for (const fd of this.#keepAlive) closeQuietly(fd);
    this.#keepAlive = [];
    if (this.#started) return;
    this.#started = true;
    if (this.#stdinEnded) this.#stdinClosed();
  }

  #stdinClosed(): void {
    this.#stdin?.destroy();
    if (!this.#closed) void Promise.resolve(this.#onStdinClosed?.()).catch(() => {});
  }

  /** Resolves when stdout and stderr have reached EOF (or were closed). */
  wait(): Promise<void> {
    return this.#done;
  }

  /**
   * Waits for the output to end, but at most `ms` (a process's children may keep the fifo
   * open after it exits); then closes everything.
   */
  async drain(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#done, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
    clearTimeout(timer);
    this.close();
  }

  /** Stops copying and closes our ends (the fifos stay; see removeFifoSet). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const fd of this.#keepAlive) closeQuietly(fd);
    this.#keepAlive = [];
    if (this.#stdin !== undefined) {
      this.#source?.unpipe(this.#stdin);
      this.#stdin.destroy();
    }
    for (const r of this.#readers) {
      r.unpipe();
      r.destroy();
    }
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
