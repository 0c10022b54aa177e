// The cgroups of a scope's namespaces (v1 controllers and the v2/unified tree).

import * as fs from "node:fs";
import * as path from "node:path";
import { readMountInfo } from "./mounts.js";
import { selfAndAncestors } from "./procfs.js";
import { isUnder, type LeakScope } from "./scope.js";
import { exists, readText } from "./sync-fs.js";

/** Every cgroup directory (v1 controllers and the v2/unified tree) of the namespaces, deepest first. */
export function findScopeCgroups(scope: LeakScope): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const m of readMountInfo()) {
    if (m.fsType !== "cgroup" && m.fsType !== "cgroup2") continue;
    for (const ns of scope.namespaces) {
      const target = `/${ns}`;
      if (!isUnder(target, m.root) && m.root !== "/") continue;
      const rel = m.root === "/" ? target : target.slice(m.root.length);
      const dir = path.join(m.mountPoint, rel);
      if (seen.has(dir)) continue;
      seen.add(dir);
      walkDirs(dir, out, 16);
    }
  }
  return out.sort((a, b) => b.split("/").length - a.split("/").length);
}

function walkDirs(dir: string, out: string[], depth: number): void {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  out.push(dir);
  if (depth <= 0) return;
  for (const e of entries) if (e.isDirectory()) walkDirs(path.join(dir, e.name), out, depth - 1);
}

/** Thaw the cgroups (v1 freezer and v2) and return the pids in them, this process and its ancestors left out. */
export function thawCgroupsAndListPids(dirs: string[]): number[] {
  const pids = new Set<number>();
  for (const dir of dirs) {
    for (const [file, value] of [
      ["freezer.state", "THAWED"],
      ["cgroup.freeze", "0"],
    ] as const) {
      const f = path.join(dir, file);
      if (exists(f)) {
        try {
          fs.writeFileSync(f, value);
        } catch {
          // best effort
        }
      }
    }
    for (const line of (readText(path.join(dir, "cgroup.procs")) ?? "").split("\n")) {
      if (/^[0-9]+$/.test(line)) pids.add(Number(line));
    }
  }
  const skip = selfAndAncestors();
  return [...pids].filter((p) => !skip.has(p));
}
