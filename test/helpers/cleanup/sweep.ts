// The sweep: remove everything of a scope, synchronously (it also runs from exit hooks).

import * as fs from "node:fs";
import * as path from "node:path";
import { execaSync } from "execa";
import { findScopeCgroups, thawCgroupsAndListPids } from "./cgroups.js";
import { findScopeMounts } from "./mounts.js";
import { findScopeProcesses, killAndWaitSync } from "./procfs.js";
import { findRuncRoots, runcContainersIn, runcDeleteAll } from "./runc-state.js";
import { isUnder, type LeakScope } from "./scope.js";
import { sleepSync } from "./sync-fs.js";

/** Rounds of find-and-SIGKILL (a killed parent may leave a child that then shows up). */
const KILL_ROUNDS = 3;
/** How long one round waits for the killed processes to be gone. */
const KILL_WAIT_MS = 3000;
/** Rounds of `umount -l` (unmounting a mount can uncover one below it). */
const UMOUNT_ROUNDS = 5;
/** Rounds of rmdir on the cgroups, `CGROUP_RETRY_MS` apart (a just-killed process keeps one busy for a moment). */
const CGROUP_ROUNDS = 50;
const CGROUP_RETRY_MS = 20;

/** Guard against sweeping (and rm -rf'ing) anything but a harness temp root. */
export function assertSweepableRoot(tempRoot: string): void {
  if (!/^\/tmp\/tsr-[A-Za-z0-9]{4,}$/.test(tempRoot)) {
    throw new Error(`refusing to sweep ${JSON.stringify(tempRoot)}: not a /tmp/tsr-XXXX temp root`);
  }
}

/**
 * Remove everything of the scope, in an order that works even if containerd and shims were
 * SIGKILLed half-way: kill the scope's processes (shims, runc, ctr — not yet the containers),
 * `runc delete --force` every container in scope's runc roots, thaw and kill what is still in the
 * namespaces' cgroups, remove shim sockets, `umount -l` mounts under the temp root (deepest
 * first), rmdir the cgroups (deepest first), then rm -rf the temp root. Returns what failed.
 * Idempotent: a second sweep finds nothing to do.
 */
export function sweepSync(scope: LeakScope): string[] {
  assertSweepableRoot(scope.tempRoot);
  const errors: string[] = [];

  // 1. Shims, runc invocations, ctr, daemons: anything that could still create something.
  for (let round = 0; round < KILL_ROUNDS; round++) {
    const procs = findScopeProcesses(scope, false);
    if (procs.length === 0) break;
    const stuck = killAndWaitSync(
      procs.map((p) => p.pid),
      KILL_WAIT_MS,
    );
    if (round === KILL_ROUNDS - 1 && stuck.length) {
      errors.push(`processes survived SIGKILL: ${stuck.join(" ")}`);
    }
  }

  // 2. Containers: runc first (it knows its cgroups and state), then whatever remains in the cgroups.
  const roots = findRuncRoots(scope);
  runcDeleteAll(roots, errors);
  for (let round = 0; round < KILL_ROUNDS; round++) {
    const pids = [
      ...new Set([
        ...thawCgroupsAndListPids(findScopeCgroups(scope)),
        ...findScopeProcesses(scope).map((p) => p.pid),
      ]),
    ];
    if (pids.length === 0) break;
    const stuck = killAndWaitSync(pids, KILL_WAIT_MS);
    if (round === KILL_ROUNDS - 1 && stuck.length) {
      errors.push(`container processes survived SIGKILL: ${stuck.join(" ")}`);
    }
  }
  const leftover: string[] = [];
  runcDeleteAll(roots, leftover); // stopped by now: delete succeeds
  for (const root of roots) {
    for (const id of runcContainersIn(root)) {
      // runc refused even a stopped container: drop its state by hand.
      fs.rmSync(path.join(root, id), { recursive: true, force: true });
      errors.push(`removed runc state ${root}/${id} by hand (${leftover.join("; ")})`);
    }
    if (!isUnder(root, scope.tempRoot)) {
      try {
        fs.rmdirSync(root);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") errors.push(`rmdir ${root}: ${String(e)}`);
      }
    }
  }

  // 3. Sockets outside the temp root (shim sockets in /run/containerd/s).
  for (const s of scope.sockets ?? []) {
    try {
      if (fs.lstatSync(s).isSocket()) fs.unlinkSync(s);
    } catch {
      // gone
    }
  }

  // 4. Mounts under the temp root, deepest first; repeat while unmounting uncovers more.
  for (let round = 0; round < UMOUNT_ROUNDS; round++) {
    const mounts = findScopeMounts(scope);
    if (mounts.length === 0) break;
    for (const m of mounts) {
      const r = execaSync("umount", ["-l", m], { reject: false, timeout: 10000 });
      if (r.exitCode !== 0 && round === UMOUNT_ROUNDS - 1) {
        errors.push(`umount -l ${m}: ${String(r.stderr).trim()}`);
      }
    }
  }

  // 5. Cgroups, deepest first (a just-killed process can keep one busy for a moment).
  for (let round = 0; round < CGROUP_ROUNDS; round++) {
    const dirs = findScopeCgroups(scope);
    if (dirs.length === 0) break;
    for (const d of dirs) {
      try {
        fs.rmdirSync(d);
      } catch (e) {
        if (round === CGROUP_ROUNDS - 1) errors.push(`rmdir ${d}: ${(e as NodeJS.ErrnoException).code}`);
      }
    }
    if (findScopeCgroups(scope).length) sleepSync(CGROUP_RETRY_MS);
  }

  // 6. The temp root, unless something is still mounted in it.
  const stillMounted = findScopeMounts(scope);
  if (stillMounted.length) {
    errors.push(`not removing ${scope.tempRoot}: still mounted: ${stillMounted.join(" ")}`);
  } else {
    try {
      fs.rmSync(scope.tempRoot, { recursive: true, force: true, maxRetries: 3 });
    } catch (e) {
      errors.push(`rm -rf ${scope.tempRoot}: ${String(e)}`);
    }
  }
  return errors;
}
