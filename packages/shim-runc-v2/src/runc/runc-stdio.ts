// The container's stdio as runc's own fd 0/1/2. runc (without a terminal) hands the fds it was
// started with to the container's process, which keeps them after runc exits. So they must be
// real file descriptors passed straight to the child — never a pipe to this process (the spawn would
// then wait for the container to close it, and the container would write into the shim's memory).

import { constants, type FileHandle, open } from "node:fs/promises";
import { RuncError } from "./runc-errors.js";
import type { ProcessStdio, StdioTarget } from "./runc-types.js";

/** What the spawn gets for one stdio slot: an fd number passed through, or /dev/null. */
export type SpawnStdio = number | "ignore";

export interface OpenedStdio {
  stdin: SpawnStdio;
  stdout: SpawnStdio;
  stderr: SpawnStdio;
  /** Closes the files this module opened (never the caller's fds). Idempotent. */
  close(): Promise<void>;
}

const READ = constants.O_RDONLY;
const WRITE = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT;

function checkTarget(command: string, name: string, target: StdioTarget | undefined): void {
  if (target === undefined || target === "ignore") return;
  if (typeof target === "number") {
    if (!Number.isInteger(target) || target < 0) {
      throw new RuncError(`${name}: ${target} is not a file descriptor`, {
        kind: "invalid-argument",
        command,
      });
    }
    return;
  }
  if (
    typeof target !== "object" ||
    target === null ||
    typeof target.path !== "string" ||
    !target.path.startsWith("/") ||
    target.path.includes("\0")
  ) {
    throw new RuncError(`${name}: expected an fd, "ignore" or { path: absolute path }`, {
      kind: "invalid-argument",
      command,
    });
  }
}

/**
 * Opens the { path } targets and returns what to spawn runc with. On failure, closes what it
 * already opened and rejects with a RuncError "invalid-argument" naming the stream.
 */
export async function openStdio(command: string, given: ProcessStdio = {}): Promise<OpenedStdio> {
  const stdio = Array.isArray(given)
    ? { stdin: given[0], stdout: given[1], stderr: given[2] }
    : (given as Exclude<ProcessStdio, readonly unknown[]>);
  checkTarget(command, "stdin", stdio.stdin);
  checkTarget(command, "stdout", stdio.stdout);
  checkTarget(command, "stderr", stdio.stderr);
  const handles: FileHandle[] = [];
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await Promise.allSettled(handles.map((h) => h.close()));
  };
  const one = async (name: string, target: StdioTarget | undefined, flags: number): Promise<SpawnStdio> => {
    if (target === undefined || target === "ignore") return "ignore";
    if (typeof target === "number") return target;
    try {
      const handle = await open(target.path, flags, 0o644);
      handles.push(handle);
      return handle.fd;
    } catch (err) {
      throw new RuncError(`${name}: cannot open ${target.path}: ${(err as Error).message}`, {
        kind: "invalid-argument",
        command,
        cause: err,
      });
    }
  };
  try {
    const stdin = await one("stdin", stdio.stdin, READ);
    const stdout = await one("stdout", stdio.stdout, WRITE);
    const stderr = await one("stderr", stdio.stderr, WRITE);
    return { stdin, stdout, stderr, close };
  } catch (err) {
    await close();
    throw err;
  }
}
