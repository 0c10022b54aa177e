// The caller's half of the shim contract in one place: run a shim's `start` in its bundle, read
// the address it prints, connect a typed Task client; run `delete` for a shim that is gone and
// decode its DeleteResponse. The daemon, the tests and the benches all launch shims through
// here. Every step has a deadline, and a shim's output is bounded: a broken or hostile shim
// costs its caller one failed container, never a hang or unbounded memory.
import { TaskService, task } from "@tsrunc/protocol/shim";
import { Client, type ClientStub, Code, type ConnectOptions, TtrpcError } from "@tsrunc/ttrpc";
import { execa, type ResultPromise } from "execa";
import { writeShimBinaryPath } from "./bundle-files.js";
import { deleteArgs, type ShimInvocation, shimEnvironment, startArgs } from "./invocation.js";

/** `start` prints one address; anything longer than this is not one. */
const maxStartOutput = 4096;
/** A DeleteResponse is a few dozen bytes. */
const maxDeleteOutput = 64 * 1024;

export interface LaunchOptions extends ShimInvocation {
  /** The shim binary (absolute path, see resolveShimBinary). */
  binary: string;
  /** The runtime options as a serialized google.protobuf.Any, written to `start`'s stdin. */
  options?: Uint8Array;
  /** The environment the shim gets before the addresses are added (default: ours). */
  env?: NodeJS.ProcessEnv;
  /** Deadline for `start` to print its address and exit (default 10 s). */
  startTimeoutMs?: number;
  /** Deadline for the first connection (default 10 s). */
  connectTimeoutMs?: number;
  /** Also record the binary in the bundle (`shim-binary-path`), as containerd 1.7 does. */
  recordBinary?: boolean;
  signal?: AbortSignal;
}

export interface ShimConnection {
  address: string;
  client: Client;
  task: ClientStub<typeof TaskService>;
  close(): Promise<void>;
}

/** Runs `<binary> … start` in the bundle and returns the address it printed. */
export async function runShimStart(opts: LaunchOptions): Promise<string> {
  if (opts.recordBinary) await writeShimBinaryPath(opts.bundle, opts.binary);
  // In a process group of its own, with a deadline of ours (see guard()).
  const p = execa(opts.binary, startArgs(opts), {
    cwd: opts.bundle,
    env: shimEnvironment(opts, opts.env),
    extendEnv: false,
    input: opts.options ?? new Uint8Array(),
    // containerd reads stdout and stderr together: a shim's error message arrives the same way.
    all: true,
    reject: false,
    detached: true,
    maxBuffer: maxStartOutput,
    stripFinalNewline: true,
    ...(opts.signal ? { cancelSignal: opts.signal } : {}),
  });
  const g = guard(p, opts.startTimeoutMs ?? 10_000);
  let r: Awaited<typeof p>;
  try {
    r = await p;
  } finally {
    g.clear();
  }
  const out = String(r.all ?? "").trim();
  if (g.timedOut || r.isMaxBuffer || r.isCanceled || r.exitCode !== 0) g.killGroup();
  if (g.timedOut)
    throw new TtrpcError(
      Code.DeadlineExceeded,
      g.exited
        ? `shim ${opts.binary} start: exited but its output stayed open past the deadline (a child holds it)`
        : `shim ${opts.binary} start: no address within the deadline`,
    );
  if (r.isMaxBuffer) throw new TtrpcError(Code.Unknown, `shim ${opts.binary} start: output too long`);
  if (r.isCanceled) throw new TtrpcError(Code.Canceled, `shim ${opts.binary} start: canceled`);
  if (r.exitCode !== 0)
    throw new TtrpcError(
      Code.Unknown,
      `shim ${opts.binary} start failed (${r.signal ?? `exit ${r.exitCode}`}): ${oneLine(out)}`,
    );
  if (!/^unix:\/\/\/[^\s\0]+$/.test(out))
    throw new TtrpcError(Code.Unknown, `shim ${opts.binary} start printed no address: ${oneLine(out)}`);
  return out;
}

/** Connects a Task client to a shim's address. */
export async function connectShim(address: string, opts: ConnectOptions = {}): Promise<ShimConnection> {
  const client = await Client.connect(address, { timeoutMs: opts.timeoutMs ?? 10_000 });
  return {
    address,
    client,
    task: client.service(TaskService),
    close: () => client.close(),
  };
}

/** `start` then connect: the first half of a task's Create, as containerd does it. */
export async function launchShim(opts: LaunchOptions): Promise<ShimConnection> {
  const address = await runShimStart(opts);
  return connectShim(address, { timeoutMs: opts.connectTimeoutMs ?? 10_000 });
}

export interface DeleteOptions extends ShimInvocation {
  binary: string;
  env?: NodeJS.ProcessEnv;
  /** containerd gives `delete` 5 s; so do we by default. */
  timeoutMs?: number;
}

/** Runs `<binary> … delete` for a shim that is gone and decodes the DeleteResponse it prints. */
export async function runShimDelete(opts: DeleteOptions): Promise<task.DeleteResponse> {
  const p = execa(opts.binary, deleteArgs(opts), {
    cwd: opts.bundle,
    env: shimEnvironment(opts, opts.env),
    extendEnv: false,
    stdin: "ignore",
    encoding: "buffer",
    reject: false,
    detached: true,
    maxBuffer: maxDeleteOutput,
    stripFinalNewline: false,
  });
  const g = guard(p, opts.timeoutMs ?? 5_000);
  let r: Awaited<typeof p>;
  try {
    r = await p;
  } finally {
    g.clear();
  }
  if (g.timedOut || r.isMaxBuffer || r.exitCode !== 0) g.killGroup();
  if (g.timedOut) throw new TtrpcError(Code.DeadlineExceeded, `shim ${opts.binary} delete timed out`);
  if (r.exitCode !== 0) {
    const err = Buffer.from(r.stderr as Uint8Array).toString("utf8");
    throw new TtrpcError(
      Code.Unknown,
      `shim ${opts.binary} delete failed (${r.signal ?? `exit ${r.exitCode}`}): ${oneLine(err)}`,
    );
  }
  try {
    return task.DeleteResponse.decode(r.stdout as Uint8Array);
  } catch (err) {
    throw new TtrpcError(Code.Unknown, `shim ${opts.binary} delete printed no DeleteResponse`, {
      cause: err,
    });
  }
}

/**
 * A deadline of our own for a verb run in a process group of its own (execa's `detached`):
 * execa's `timeout` waits for the output to end, which a child of the verb that keeps stdout
 * open delays for as long as it lives. At the deadline the group is killed and our ends of the
 * pipes closed; killGroup() also serves a verb that failed, so that what it left goes with it.
 * A real shim's server runs in a session (or group) of its own and is never in this group.
 */
function guard(p: ResultPromise, ms: number) {
  const g = {
    timedOut: false,
    /** start (or delete) had exited when the deadline came: a child holds its output. */
    exited: false,
    killGroup() {
      try {
        if (p.pid) process.kill(-p.pid, "SIGKILL");
      } catch {
        // the group is gone already
      }
    },
    clear: () => clearTimeout(timer),
  };
  let exited = false;
  p.once("exit", () => {
    exited = true;
  });
  const timer = setTimeout(() => {
    g.timedOut = true;
    g.exited = exited;
    g.killGroup();
    for (const s of [p.stdout, p.stderr, p.all]) s?.destroy();
  }, ms);
  return g;
}

/** A shim's output as one line of printable text: control characters (terminal escapes) escaped. */
function oneLine(text: string): string {
  const s = text
    .replace(/\s+/g, " ")
    .trim()
    // biome-ignore lint/suspicious/noControlCharactersInRegex: these are what it removes
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
  return s.length > 300 ? `${s.slice(0, 300)}…` : s || "(no output)";
}
