// What run, exec and attach share: making the stdio of a process (fifos, null or a log URI),
// copying it, the terminal in raw mode, window sizes, signal forwarding, and the order ctr
// keeps: Wait is asked before Start, so no exit can be missed.

import { spawnSync } from "node:child_process";
import { closeSync, constants, openSync } from "node:fs";
import type { CallOpts, ProcessRef, TsruncClient } from "../client.js";
import { createFifoSet, FifoIO, type FifoSet, removeFifoSet, type StdioPaths } from "../io.js";
import { parseSignal } from "../signals.js";
import { UsageError } from "./args.js";
import type { Globals } from "./globals.js";

/** Signals passed on to the process (not with a terminal: there ^C is a byte, not a signal). */
export const FORWARDED_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const;

export type StdioMode = { kind: "fifo" } | { kind: "null" } | { kind: "log"; uri: string };

/** Checks the stdio flags of run/exec against each other, as ctr does. */
export function stdioMode(o: {
  nullIO: boolean;
  logUri: string | undefined;
  tty: boolean;
  stdin: boolean;
}): StdioMode {
  if (o.nullIO && o.logUri !== undefined)
    throw new UsageError("--null-io and --log-uri cannot be used together");
  if (o.nullIO || o.logUri !== undefined) {
    const flag = o.nullIO ? "--null-io" : "--log-uri";
    if (o.tty) throw new UsageError(`-t and ${flag} cannot be used together`);
    if (o.stdin) throw new UsageError(`-i and ${flag} cannot be used together`);
  }
  if (o.nullIO) return { kind: "null" };
  if (o.logUri !== undefined) {
    if (!/^(file|binary):\/\/\//.test(o.logUri)) {
      throw new UsageError(
        `--log-uri must be file:///PATH or binary:///PATH[?ARGS], not ${JSON.stringify(o.logUri)}`,
      );
    }
    return { kind: "log", uri: o.logUri };
  }
  return { kind: "fifo" };
}

/** The terminal we run in, switched to raw mode; restored on every way out. */
export class RawTerminal {
  #restored = false;
  readonly #onExit = () => this.restore();

  private constructor() {
    process.stdin.setRawMode(true);
    // libuv's raw mode keeps output post-processing (OPOST with ONLCR), so the "\r\n" a
    // container's pty already writes would reach the screen as "\r\r\n". ctr's raw mode (Go's
    // term.MakeRaw) turns OPOST off; Node has no termios call, so stty does it on our stdin.
    // setRawMode(false) puts back the settings libuv saved before, OPOST included.
    spawnSync("stty", ["-opost"], { stdio: [0, "ignore", "ignore"] });
    process.once("exit", this.#onExit);
  }

  /** Raw mode when stdin is a terminal; undefined otherwise (e.g. in tests, or piped input). */
  static enter(): RawTerminal | undefined {
    return process.stdin.isTTY ? new RawTerminal() : undefined;
  }

  restore(): void {
    if (this.#restored) return;
    this.#restored = true;
    process.removeListener("exit", this.#onExit);
    try {
      process.stdin.setRawMode(false);
    } catch {
      // stdin already gone
    }
  }
}

/** Our window size, when stdout is a terminal. */
export function windowSize(): { width: number; height: number } | undefined {
  const out = process.stdout;
  if (!out.isTTY || !out.columns || !out.rows) return undefined;
  return { width: out.columns, height: out.rows };
}

export interface StdioSetup {
  paths: StdioPaths;
  /** The fifo directory, when fifos were made. */
  fifos: FifoSet | undefined;
  /** Our copying, unless detached. */
  io: FifoIO | undefined;
  terminal: RawTerminal | undefined;
  /** Detached: drops our readers on the output fifos, held from before Create until Start. */
  release?: () => void;
}

/**
 * Makes the stdio of a new process. With fifos and not detached, the copying starts at once
 * (readers open before the process exists). Detached, the fifos are only made, for a later
 * `tsctl tasks attach`.
 */
export async function setupStdio(o: {
  client: TsruncClient;
  g: Globals;
  ref: ProcessRef;
  mode: StdioMode;
  tty: boolean;
  stdin: boolean;
  detach: boolean;
}): Promise<StdioSetup> {
  if (o.mode.kind === "null") {
    return {
      paths: { stdin: "", stdout: "", stderr: "", terminal: false },
      fifos: undefined,
      io: undefined,
      terminal: undefined,
    };
  }
  if (o.mode.kind === "log") {
    return {
      paths: { stdin: "", stdout: o.mode.uri, stderr: o.mode.uri, terminal: false },
      fifos: undefined,
      io: undefined,
      terminal: undefined,
    };
  }
  const fifos = await createFifoSet({
    root: o.g.fifoDir,
    namespace: o.client.namespace,
    containerId: o.ref.containerId,
    ...(o.ref.execId ? { processId: o.ref.execId } : {}),
    stdin: o.stdin || o.tty,
    terminal: o.tty,
  });
  if (o.detach) {
    // A shim may open the output fifos for writing in blocking mode (the Go shim does, during
    // Create or an exec's Start, and gives up after a deadline): that waits for a reader. Ours
    // is held until Start, as ctr's run -d holds its copy; then output waits for attach.
    const release = holdReaders(fifos);
    return { paths: fifos, fifos, io: undefined, terminal: undefined, release };
  }
  let io: FifoIO;
  try {
    io = openIO(o.client, o.ref, fifos, true);
  } catch (err) {
    await removeFifoSet(fifos);
    throw err;
  }
  const terminal = o.tty ? RawTerminal.enter() : undefined;
  return { paths: fifos, fifos, io, terminal };
}

/** Opens a reader on each output fifo; returns the way to close them. */
function holdReaders(paths: StdioPaths): () => void {
  const fds: number[] = [];
  const release = () => {
    for (const fd of fds.splice(0)) closeSync(fd);
  };
  try {
    for (const p of [paths.stdout, paths.stderr]) {
      if (p !== "") fds.push(openSync(p, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW));
    }
  } catch (err) {
    release();
    throw err;
  }
  return release;
}

/** Copies our stdio to and from a process's fifos; at our stdin's EOF its stdin is closed too. */
export function openIO(client: TsruncClient, ref: ProcessRef, paths: StdioPaths, keepAlive: boolean): FifoIO {
  return FifoIO.open(
    paths,
    { stdin: paths.stdin !== "" ? process.stdin : undefined, stdout: process.stdout, stderr: process.stderr },
    { keepAlive, onStdinClosed: () => client.tasks.closeIO({ ...ref, stdin: true }).catch(() => {}) },
  );
}

/**
 * Signals arriving while we run: before the process has started they are held (tsctl must not
 * die half-way through creating things), afterwards they go to the process. With a terminal
 * nothing is forwarded; a signal then only restores the terminal and ends us, as 128+N.
 */
export class SignalRelay {
  readonly #handlers = new Map<string, () => void>();
  readonly #held: string[] = [];
  #target: ((sig: string) => void) | undefined;

  constructor(forward: boolean, terminal: RawTerminal | undefined) {
    for (const sig of FORWARDED_SIGNALS) {
      const h = () => {
        if (!forward) {
          terminal?.restore();
          process.exit(128 + parseSignal(sig));
        }
        if (this.#target === undefined) this.#held.push(sig);
        else this.#target(sig);
      };
      this.#handlers.set(sig, h);
      process.on(sig, h);
    }
  }

  /** From now on signals go to `target`; held ones first. */
  forwardTo(target: (sig: string) => void): void {
    this.#target = target;
    for (const sig of this.#held.splice(0)) target(sig);
  }

  /** Signals held but never forwarded (the process did not start). */
  get held(): readonly string[] {
    return this.#held;
  }

  stop(): void {
    for (const [sig, h] of this.#handlers) process.removeListener(sig, h);
    this.#handlers.clear();
  }
}

/** Sends our window size now and whenever it changes; returns the way to stop. */
export function relayWindowSize(client: TsruncClient, ref: ProcessRef): () => void {
  const send = () => {
    const size = windowSize();
    if (size !== undefined) void client.tasks.resizePty({ ...ref, ...size }).catch(() => {});
  };
  send();
  process.on("SIGWINCH", send);
  return () => process.removeListener("SIGWINCH", send);
}

export interface StartedProcess {
  pid: number;
  /** The exit, asked for before Start. */
  exit: Promise<{ exitStatus: number }>;
}

/**
 * Asks for the process's exit, then starts it (ctr's order). Detached, nobody waits: only the
 * start is asked for, and `exit` never settles.
 */
export async function waitThenStart(
  client: TsruncClient,
  ref: ProcessRef,
  detach: boolean,
  o?: CallOpts,
): Promise<StartedProcess> {
  if (detach) return { pid: await client.tasks.start(ref, o), exit: new Promise(() => {}) };
  const exit = client.tasks.wait(ref);
  exit.catch(() => {}); // looked at later; a failed Start must not leave an unhandled rejection
  const pid = await client.tasks.start(ref, o);
  return { pid, exit };
}

/** The exit code tsctl ends with for a process's exit status (shims report 128+N for signal N). */
export function exitCodeFor(status: number): number {
  return Math.min(status, 255);
}
