// containerd's identifier rule (the one in @tsrunc/shim-contract), applied on the client before
// any id or namespace becomes part of a path (fifo directories) or a request. The daemon checks
// again; checking here gives a clear message before anything is created.
import { identifierProblem, maxIdentifierLength } from "@tsrunc/shim-contract/identifiers";
import { Code, TtrpcError } from "@tsrunc/ttrpc";

export const MAX_IDENTIFIER_LENGTH = maxIdentifierLength;

/** True when `s` is a valid container id, exec id or namespace. */
export function isIdentifier(s: string): boolean {
  return identifierProblem(s) === undefined;
}

/** Throws InvalidArgument unless `s` is a valid identifier; `what` names it in the message. */
export function checkIdentifier(s: string, what: string): string {
  const problem = identifierProblem(s);
  if (problem) throw new TtrpcError(Code.InvalidArgument, `invalid ${what}: ${problem}`);
  return s;
}
