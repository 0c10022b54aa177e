// runc's state directories: which roots belong to a scope, their containers, `runc delete`.

import * as fs from "node:fs";
import * as path from "node:path";
import { execaSync } from "execa";
import type { LeakScope } from "./scope.js";
import { exists } from "./sync-fs.js";

/**
 * Default runc roots (a namespace's containers live in <root>/<namespace>): the Go shim's, and
 * our shim's (packages/shim-runc-v2, unless TSRUNC_RUNC_ROOT says otherwise).
 */
// TODO(shim-contract): defaultRuncRoot
export const DEFAULT_RUNC_ROOTS = ["/run/containerd/runc", "/run/tsrunc/runc"] as const;

/** Runc roots in scope that exist: <default root>/<ns>, the extra ones, and any inside the temp root. */
export function findRuncRoots(scope: LeakScope): string[] {
  const roots = new Set<string>();
  for (const ns of scope.namespaces) for (const base of DEFAULT_RUNC_ROOTS) roots.add(path.join(base, ns));
  for (const r of scope.runcRoots ?? []) roots.add(r);
  if (exists(scope.tempRoot)) findRuncRootsUnder(scope.tempRoot, roots, 8, fs.statSync(scope.tempRoot).dev);
  return [...roots].filter(exists);
}

function findRuncRootsUnder(dir: string, roots: Set<string>, depth: number, dev: number): void {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const child = path.join(dir, e.name);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(child);
    } catch {
      continue;
    }
    if (st.dev !== dev) continue; // never walk into mounts
    if (exists(path.join(child, "state.json"))) {
      roots.add(dir);
      continue;
    }
    if (depth > 0) findRuncRootsUnder(child, roots, depth - 1, dev);
  }
}

/** Container state dirs (`<root>/<id>` holding state.json) of a runc root. */
export function runcContainersIn(root: string): string[] {
  try {
    return fs
      .readdirSync(root, { withFileTypes: true })
      .filter((e) => e.isDirectory() && exists(path.join(root, e.name, "state.json")))
      .map((e) => e.name);
  } catch {
    return [];
  }
}

/** `runc delete --force` every container of the roots; what fails (state left behind) goes to `errors`. */
export function runcDeleteAll(roots: string[], errors: string[]): void {
  for (const root of roots) {
    for (const id of runcContainersIn(root)) {
      const r = execaSync("runc", ["--root", root, "delete", "--force", id], {
        reject: false,
        timeout: 15000,
      });
      if (r.exitCode !== 0 && exists(path.join(root, id, "state.json"))) {
        errors.push(`runc --root ${root} delete --force ${id}: ${String(r.stderr).trim() || r.exitCode}`);
      }
    }
  }
}
