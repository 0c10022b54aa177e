// Status codes and the one error class of the stack. ttrpc carries gRPC's google.rpc.Status on
// the wire, so every failure that crosses a process boundary must be expressible as a code plus
// a message. Errors therefore carry their code from birth: nobody downstream has to guess a
// code from a message string.

/** gRPC status codes, as carried in google.rpc.Status.code. */
export enum Code {
  OK = 0,
  Canceled = 1,
  Unknown = 2,
  InvalidArgument = 3,
  DeadlineExceeded = 4,
  NotFound = 5,
  AlreadyExists = 6,
  PermissionDenied = 7,
  ResourceExhausted = 8,
  FailedPrecondition = 9,
  Aborted = 10,
  OutOfRange = 11,
  Unimplemented = 12,
  Internal = 13,
  Unavailable = 14,
  DataLoss = 15,
  Unauthenticated = 16,
}

/** A google.protobuf.Any as found in google.rpc.Status.details. */
export interface StatusDetail {
  typeUrl: string;
  value: Uint8Array;
}

export interface TtrpcErrorOptions {
  details?: StatusDetail[];
  cause?: unknown;
}

// A registry-wide brand, so that isCode() still recognises our errors if a bundler ends up with
// two copies of this module (instanceof would then fail).
const brand = Symbol.for("tsrunc.ttrpc.TtrpcError");

/** The error class of the whole stack: a status code, a message and optional status details. */
export class TtrpcError extends Error {
  readonly code: Code;
  readonly details: readonly StatusDetail[];

  constructor(code: Code, message: string, options: TtrpcErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TtrpcError";
    this.code = code;
    this.details = options.details ?? [];
  }

  /** "NotFound: container abc" — the code's name helps when reading logs. */
  override toString(): string {
    return `${this.name} ${Code[this.code] ?? this.code}: ${this.message}`;
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    // Subclasses (there should be none) keep the ordinary prototype-chain test; `this` is the
    // class instanceof was asked about, which is exactly what must be compared here.
    // biome-ignore lint/complexity/noThisInStatic: see above
    if (this !== TtrpcError) return Function.prototype[Symbol.hasInstance].call(this, value);
    return typeof value === "object" && value !== null && (value as Record<symbol, unknown>)[brand] === true;
  }
}
Object.defineProperty(TtrpcError.prototype, brand, { value: true });

/** True when `err` is a TtrpcError with the given code. */
export function isCode(err: unknown, code: Code): boolean {
  return err instanceof TtrpcError && err.code === code;
}

/** The code an error travels with: its own if it is a TtrpcError, otherwise Unknown. */
export function codeOf(err: unknown): Code {
  return err instanceof TtrpcError ? err.code : Code.Unknown;
}

/**
 * Turns anything thrown into a TtrpcError for the wire. Errors without a code become Unknown.
 * An AbortError whose cause is a TtrpcError (what Node's timers and fs throw when our own
 * signal aborts them) takes the cause's code, so a handler that simply lets the abort propagate
 * answers DeadlineExceeded or Canceled rather than Unknown.
 */
export function toTtrpcError(err: unknown): TtrpcError {
  if (err instanceof TtrpcError) return err;
  if (err instanceof Error) {
    if (err.cause instanceof TtrpcError && err.name === "AbortError") return err.cause;
    return new TtrpcError(Code.Unknown, err.message, { cause: err });
  }
  return new TtrpcError(Code.Unknown, String(err), { cause: err });
}

/**
 * containerd's errdefs, as status codes: the same mapping containerd applies when its errors
 * cross ttrpc, so a Go client sees errdefs.IsNotFound() etc. on our errors.
 */
export const errdefs = {
  notFound: (message: string, options?: TtrpcErrorOptions) => new TtrpcError(Code.NotFound, message, options),
  alreadyExists: (message: string, options?: TtrpcErrorOptions) =>
    new TtrpcError(Code.AlreadyExists, message, options),
  invalidArgument: (message: string, options?: TtrpcErrorOptions) =>
    new TtrpcError(Code.InvalidArgument, message, options),
  failedPrecondition: (message: string, options?: TtrpcErrorOptions) =>
    new TtrpcError(Code.FailedPrecondition, message, options),
  notImplemented: (message: string, options?: TtrpcErrorOptions) =>
    new TtrpcError(Code.Unimplemented, message, options),
  unavailable: (message: string, options?: TtrpcErrorOptions) =>
    new TtrpcError(Code.Unavailable, message, options),
  isNotFound: (err: unknown) => isCode(err, Code.NotFound),
  isAlreadyExists: (err: unknown) => isCode(err, Code.AlreadyExists),
  isInvalidArgument: (err: unknown) => isCode(err, Code.InvalidArgument),
  isFailedPrecondition: (err: unknown) => isCode(err, Code.FailedPrecondition),
  isNotImplemented: (err: unknown) => isCode(err, Code.Unimplemented),
  isUnavailable: (err: unknown) => isCode(err, Code.Unavailable),
} as const;
