// RuncError: a failed runc invocation, with runc's own message and a kind the shim turns into a
// status code. runc reports failures only as text (exit status 1 for nearly everything), so the
// mapping from runc's well-known messages to kinds lives here, in one place, and nowhere else.

/**
 * What went wrong, as far as the shim's status codes care.
 * - not-found: the container does not exist (NotFound 5)
 * - already-exists: a container with that id exists (AlreadyExists 6)
 * - not-running: the container is not running, e.g. kill/pause/update/ps of a stopped one (FailedPrecondition 9)
 * - stopped: the container has stopped, e.g. start or exec after its exit (FailedPrecondition 9)
 * - invalid-state: another state conflict: not paused, already running, not stopped (FailedPrecondition 9)
 * - invalid-argument: refused before runc ran: bad id, relative path, bad signal (InvalidArgument 3)
 * - unsupported: this runc lacks the command or flag (Unimplemented 12)
 * - timeout: the call's deadline passed and runc was killed (DeadlineExceeded 4)
 * - canceled: the call's AbortSignal fired and runc was killed (Canceled 1)
 * - failed: anything else, e.g. runc could not be spawned, or CRIU failed (Unknown 2)
 */
export type RuncErrorKind =
  | "not-found"
  | "already-exists"
  | "not-running"
  | "stopped"
  | "invalid-state"
  | "invalid-argument"
  | "unsupported"
  | "timeout"
  | "canceled"
  | "failed";

/** gRPC status codes (the numbers containerd's errdefs map to) for each kind. */
export const RUNC_ERROR_CODES: Readonly<Record<RuncErrorKind, number>> = {
  "not-found": 5,
  "already-exists": 6,
  "not-running": 9,
  stopped: 9,
  "invalid-state": 9,
  "invalid-argument": 3,
  unsupported: 12,
  timeout: 4,
  canceled: 1,
  failed: 2,
};

// Ordered: the first match wins. Messages are runc 1.1's (libcontainer/error.go, utils_linux.go,
// the command files) and stay valid for 1.0 to 1.2.
const MESSAGE_KINDS: readonly [RegExp, RuncErrorKind][] = [
  [/container does not exist|container ".*" does not exist/, "not-found"],
  [/container with given ID already exists|ID already in use|container id already in use/i, "already-exists"],
  [/that has stopped|in a stopped container|container is stopped/, "stopped"],
  [/container not running|is not running|container is not running/, "not-running"],
  [/container not paused|already running|that is not stopped|cannot (?:pause|resume)/, "invalid-state"],
  [/No help topic for|flag provided but not defined|unknown command/, "unsupported"],
];

/** The kind runc's message stands for; "failed" when it is none of the well-known ones. */
export function classifyRuncMessage(message: string): RuncErrorKind {
  for (const [pattern, kind] of MESSAGE_KINDS) if (pattern.test(message)) return kind;
  return "failed";
}

export interface RuncErrorInit {
  kind: RuncErrorKind;
  /** runc's argv after the binary (global flags included), e.g. ["--root", "/r", …, "state", "c1"]. */
  args?: readonly string[];
  /** The subcommand: "create", "state", … */
  command: string;
  /** runc's exit code; undefined when runc never ran or was killed. */
  exitCode?: number;
  /** What runc wrote on stderr (when the driver captured it). */
  stderr?: string;
  /** CRIU's error lines from its log in the work path, for checkpoint failures. */
  criuErrors?: string[];
  cause?: unknown;
}

/**
 * A failed runc call. `message` is runc's own message (the last error-level line runc logged
 * during this call, else its stderr), e.g. "container does not exist".
 */
export class RuncError extends Error {
  readonly kind: RuncErrorKind;
  /** gRPC status code for `kind`: wrap as TtrpcError(err.code, err.message, { cause: err }). */
  readonly code: number;
  readonly command: string;
  readonly args: readonly string[];
  readonly exitCode: number | undefined;
  readonly stderr: string;
  readonly criuErrors: readonly string[];

  constructor(message: string, init: RuncErrorInit) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = "RuncError";
    this.kind = init.kind;
    this.code = RUNC_ERROR_CODES[init.kind];
    this.command = init.command;
    this.args = init.args ?? [];
    this.exitCode = init.exitCode;
    this.stderr = init.stderr ?? "";
    this.criuErrors = init.criuErrors ?? [];
  }

  /** "RuncError not-found (runc state, exit 1): container does not exist" */
  override toString(): string {
    const exit = this.exitCode === undefined ? "" : `, exit ${this.exitCode}`;
    return `${this.name} ${this.kind} (runc ${this.command}${exit}): ${this.message}`;
  }
}

/** True when `err` is a RuncError of one of `kinds` (any kind when none is given). */
export function isRuncError(err: unknown, ...kinds: RuncErrorKind[]): err is RuncError {
  return err instanceof RuncError && (kinds.length === 0 || kinds.includes(err.kind));
}
