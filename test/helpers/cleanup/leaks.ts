// The leak check: everything of a scope that is still there.

import * as path from "node:path";
import { findScopeCgroups } from "./cgroups.js";
import { findScopeMounts } from "./mounts.js";
import { findScopeProcesses, type ProcessInfo } from "./procfs.js";
import { findRuncRoots, runcContainersIn } from "./runc-state.js";
import { isUnder, type LeakScope } from "./scope.js";
import { boundSockets } from "./sockets.js";
import { exists } from "./sync-fs.js";

export interface Leaks {
  processes: ProcessInfo[];
  mounts: string[];
  runcContainers: string[];
  runcRoots: string[];
  cgroups: string[];
  sockets: string[];
  paths: string[];
}

export function findLeaks(scope: LeakScope): Leaks {
  const runcRoots = findRuncRoots(scope);
  const sockets = new Set(boundSockets(scope));
  for (const s of scope.sockets ?? []) if (exists(s)) sockets.add(s);
  return {
    processes: findScopeProcesses(scope),
    mounts: findScopeMounts(scope),
    runcContainers: runcRoots.flatMap((r) => runcContainersIn(r).map((id) => path.join(r, id))),
    runcRoots: runcRoots.filter((r) => !isUnder(r, scope.tempRoot)),
    cgroups: findScopeCgroups(scope),
    sockets: [...sockets],
    paths: exists(scope.tempRoot) ? [scope.tempRoot] : [],
  };
}

export function isClean(leaks: Leaks): boolean {
  return Object.values(leaks).every((v: unknown[]) => v.length === 0);
}

export function describeLeaks(leaks: Leaks): string {
  const lines: string[] = [];
  for (const p of leaks.processes) lines.push(`process ${p.pid} (${p.reason}): ${p.argv.join(" ")}`);
  for (const [k, v] of Object.entries(leaks)) {
    if (k === "processes") continue;
    for (const item of v as string[]) lines.push(`${k}: ${item}`);
  }
  return lines.join("\n");
}
