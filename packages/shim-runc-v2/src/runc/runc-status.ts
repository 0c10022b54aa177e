// From a runc failure to the status the shim answers with. containerd's own runc shim words these
// as "OCI runtime <op> failed: <runc's message>", and the code comes from the RuncError's kind:
// not-found 5, already-exists 6, not-running/stopped/invalid-state 9, invalid-argument 3,
// unsupported 12, timeout 4, canceled 1, anything else 2.

import { type Code, TtrpcError, toTtrpcError } from "@tsrunc/ttrpc";
import { RuncError } from "./runc-errors.js";

/**
 * The TtrpcError for an error thrown by a Runc call made for the shim operation `op`
 * ("create", "start", "kill", …). TtrpcErrors pass through; other errors become Unknown.
 */
export function runcErrorToStatus(err: unknown, op: string): TtrpcError {
  if (err instanceof RuncError) {
    return new TtrpcError(err.code as Code, `OCI runtime ${op} failed: ${err.message}`, { cause: err });
  }
  return toTtrpcError(err);
}
