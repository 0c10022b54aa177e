// Glue to tap: the structural test type the helpers take, and the leak assertion.

import type { Extra } from "tap";
import { describeLeaks, findLeaks, isClean } from "./leaks.js";
import type { LeakScope } from "./scope.js";

/** Structural subset of a tap Test, so helpers work with `t` and subtests alike. */
export interface TestLike {
  ok(value: unknown, message: string, extra: Extra): boolean;
  teardown(fn: () => unknown): void;
  passing(): boolean;
  comment(...args: unknown[]): void;
}

/** One assertion: nothing of the scope is left (processes, mounts, runc state, cgroups, sockets, temp root). */
export function assertNoLeaks(t: TestLike, scope: LeakScope, message = "nothing leaked"): boolean {
  const leaks = findLeaks(scope);
  const clean = isClean(leaks);
  return t.ok(clean, message, clean ? {} : { diagnostic: true, leaks: describeLeaks(leaks) });
}
