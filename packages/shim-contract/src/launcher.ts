// The caller's half of the shim contract in one place: run a shim's `start` in its bundle, read
// the address it prints, connect a typed Task client; run `delete` for a shim that is gone and
// decode its DeleteResponse. The daemon, the tests and the benches all launch shims through
// here. Every step has a deadline, and a shim's output is bounded: a broken or hostile shim
// costs its caller one failed container, never a hang or unbounded memory.
import { TaskService, task } from "@tsrunc/protocol/shim";
import { Client, type ClientStub, Code, type ConnectOptions, TtrpcError } from "@tsrunc/ttrpc";
import { execa } from "execa";
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
  const r = await execa(opts.binary, startArgs(opts), {
    cwd: opts.bundle,
    env: shimEnvironment(opts, opts.env),
    extendEnv: false,
    input: opts.options ?? new Uint8Array(),
    // containerd reads stdout and stderr together: a shim's error message arrives the same way.
    all: true,
    reject: false,
    timeout: opts.startTimeoutMs ?? 10_000,
    maxBuffer: maxStartOutput,
    stripFinalNewline: true,
    ...(opts.signal ? { cancelSignal: opts.signal } : {}),
  });
  const out = String(r.all ?? "").trim();
  if (r.timedOut)
    throw new TtrpcError(Code.DeadlineExceeded, `shim ${opts.binary} start: no address within the deadline`);
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
  const r = await execa(opts.binary, deleteArgs(opts), {
    cwd: opts.bundle,
    env: shimEnvironment(opts, opts.env),
    extendEnv: false,
    stdin: "ignore",
    encoding: "buffer",
    reject: false,
    timeout: opts.timeoutMs ?? 5_000,
    maxBuffer: maxDeleteOutput,
    stripFinalNewline: false,
  });
  if (r.timedOut) throw new TtrpcError(Code.DeadlineExceeded, `shim ${opts.binary} delete timed out`);
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

function oneLine(text: string): string {
  const s = text.replace(/\s+/g, " ").trim();
  return s.length > 300 ? `${s.slice(0, 300)}…` : s || "(no output)";
}
