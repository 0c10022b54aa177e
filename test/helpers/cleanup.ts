// Finding and removing everything a cross-process test can leave behind: processes, runc
// containers, mounts, cgroups, shim sockets and the test's temp root. One file per concern in
// cleanup/; this barrel is what tests import.
//
// Everything there is synchronous on purpose: the same sweep runs from a tap teardown and from a
// process exit/signal hook (where nothing asynchronous gets to run), so a test that dies still
// leaves the machine clean.

export { findScopeCgroups } from "./cleanup/cgroups.js";
export { onEmergencyExit } from "./cleanup/exit-hooks.js";
export { findLeaks, isClean, type Leaks } from "./cleanup/leaks.js";
export { findScopeMounts, readMountInfo } from "./cleanup/mounts.js";
export { findScopeProcesses, type ProcessInfo } from "./cleanup/procfs.js";
export { findRuncRoots, runcContainersIn } from "./cleanup/runc-state.js";
export type { LeakScope } from "./cleanup/scope.js";
export { goShimSocketPath } from "./cleanup/sockets.js";
export { sweepSync } from "./cleanup/sweep.js";
export { assertNoLeaks, type TestLike } from "./cleanup/tap-cleanup.js";
