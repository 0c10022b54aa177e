// containerd's identifier rule, applied on the client before any id or namespace becomes part
// of a path (fifo directories) or a request: letters and digits, separated by single '.', '_'
// or '-', at most 76 characters. The daemon checks again; checking here gives a clear message
// before anything is created.

import { Code, TtrpcError } from "@tsrunc/ttrpc";

const IDENTIFIER = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
export const MAX_IDENTIFIER_LENGTH = 76;

/** True when `s` is a valid container id, exec id or namespace. */
export function isIdentifier(s: string): boolean {
  return s.length > 0 && s.length <= MAX_IDENTIFIER_LENGTH && IDENTIFIER.test(s);
}

/** Throws InvalidArgument unless `s` is a valid identifier; `what` names it in the message. */
export function checkIdentifier(s: string, what: string): string {
  if (s.length === 0) throw new TtrpcError(Code.InvalidArgument, `${what} must not be empty`);
  if (s.length > MAX_IDENTIFIER_LENGTH) {
    throw new TtrpcError(
      Code.InvalidArgument,
      `${what} ${JSON.stringify(s.slice(0, 80))}… is longer than ${MAX_IDENTIFIER_LENGTH} characters`,
    );
  }
  if (!IDENTIFIER.test(s)) {
    throw new TtrpcError(
      Code.InvalidArgument,
      `${what} ${JSON.stringify(s)} is not valid: use letters and digits, separated by single '.', '_' or '-'`,
    );
  }
  return s;
}
