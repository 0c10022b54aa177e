// Mounts, from /proc/self/mountinfo.

import { isUnder, type LeakScope } from "./scope.js";
import { readText } from "./sync-fs.js";

export interface MountEntry {
  root: string;
  mountPoint: string;
  fsType: string;
  superOptions: string;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

export function readMountInfo(): MountEntry[] {
  const text = readText("/proc/self/mountinfo") ?? "";
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const l = left.split(" ");
    const r = right.split(" ");
    out.push({
      root: unescapeMount(l[3] ?? ""),
      mountPoint: unescapeMount(l[4] ?? ""),
      fsType: r[0] ?? "",
      superOptions: r[2] ?? "",
    });
  }
  return out;
}

/** Mount points at or under the temp root, deepest first. */
export function findScopeMounts(scope: LeakScope): string[] {
  const points = readMountInfo()
    .map((m) => m.mountPoint)
    .filter((p) => isUnder(p, scope.tempRoot));
  return [...new Set(points)].sort(
    (a, b) => b.split("/").length - a.split("/").length || b.length - a.length,
  );
}
