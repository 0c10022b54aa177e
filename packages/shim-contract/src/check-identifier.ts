// The identifier rule as a guard for request handlers: a bad id is InvalidArgument before any
// path is built from it. Separate from identifiers.ts so that the shim's start-up path, which
// only needs the rule, does not load the ttrpc package.
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { identifierProblem } from "./identifiers.js";

/** Throws InvalidArgument naming `what` (e.g. "container id") when `id` breaks the rule. */
export function checkIdentifier(id: string, what = "identifier"): string {
  const problem = identifierProblem(id);
  if (problem) throw new TtrpcError(Code.InvalidArgument, `invalid ${what}: ${problem}`);
  return id;
}
