// One awaited child process with node:child_process — what the shim used execa for (runc, mount,
// umount): no shell, stdio slots that are an fd passed through, "ignore" or a captured pipe,
// optional input on stdin, a timeout and an AbortSignal that SIGKILL the child. It never
// rejects: the result says how the child ended. Inside the shim this replaces execa, whose
// module graph cost about 3.7 MB of every idle shim and ~10 ms of every start (the map allows
// node:child_process in the shim where measured cheaper; execa stays the tool elsewhere).
import { spawn } from "node:child_process";

export type Slot = "ignore" | "pipe" | number;

export interface RunProcessOptions {
  stdin?: Slot;
  stdout?: Slot;
  stderr?: Slot;
  /** Written to stdin (which then must be "pipe", the default when input is given). */
  input?: string | Uint8Array;
  /** 0 or undefined: no timeout. */
  timeoutMs?: number;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface RunProcessResult {
  /** The exit code; undefined when killed by a signal or never started. */
  exitCode?: number;
  /** The signal that killed it (e.g. "SIGKILL"). */
  signal?: NodeJS.Signals;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  canceled: boolean;
  /** A spawn error (ENOENT, EACCES…) or a stdin error. */
  error?: Error;
  /** Anything but exit code 0. */
  failed: boolean;
  /** A short description for a failure: `Command failed with ENOENT: runc state x`, … */
  message: string;
}

export function runProcess(
  file: string,
  args: readonly string[],
  options: RunProcessOptions = {},
): Promise<RunProcessResult> {
  const stdin = options.stdin ?? (options.input === undefined ? "ignore" : "pipe");
  const stdout = options.stdout ?? "pipe";
  const stderr = options.stderr ?? "pipe";
  const command = [file, ...args].join(" ");
  return new Promise((resolve) => {
    let timedOut = false;
    let canceled = false;
    let error: Error | undefined;
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const child = spawn(file, args, {
      stdio: [stdin, stdout, stderr],
      env: options.env,
      cwd: options.cwd,
    });
    const kill = () => {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    };
    const onAbort = () => {
      canceled = true;
      kill();
    };
    const finish = (exitCode: number | null, signal: NodeJS.Signals | null) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      const failed = exitCode !== 0 || error !== undefined;
      const code = exitCode ?? undefined;
      const sig = signal ?? undefined;
      const message = !failed
        ? ""
        : error && code === undefined && sig === undefined
          ? `Command failed with ${(error as NodeJS.ErrnoException).code ?? "an error"}: ${command}\n${error.message}`
          : timedOut
            ? `Command timed out: ${command}`
            : sig !== undefined
              ? `Command was killed with ${sig}: ${command}`
              : `Command failed with exit code ${code}: ${command}`;
      resolve({
        exitCode: code,
        signal: sig,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        timedOut,
        canceled,
        error,
        failed,
        message,
      });
    };
    child.stdout?.on("data", (d: Buffer) => out.push(d));
    child.stderr?.on("data", (d: Buffer) => err.push(d));
    child.on("error", (e) => {
      error ??= e;
      // A spawn failure emits no exit; close may not come either.
      if (child.pid === undefined) finish(null, null);
    });
    child.on("close", finish);
    if (child.pid === undefined) return; // the error event follows
    if (options.timeoutMs && options.timeoutMs > 0) {
      timer = setTimeout(() => {
        timedOut = true;
        kill();
      }, options.timeoutMs);
    }
    if (options.signal) {
      if (options.signal.aborted) onAbort();
      else options.signal.addEventListener("abort", onAbort, { once: true });
    }
    if (child.stdin) {
      child.stdin.on("error", (e) => {
        // EPIPE when the child exits without reading: its exit status tells what happened.
        if ((e as NodeJS.ErrnoException).code !== "EPIPE") error ??= e;
      });
      child.stdin.end(options.input ?? "");
    }
  });
}
