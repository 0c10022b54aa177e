// Where a container's cgroup lives, found from its init's pid: the OOM watcher and Stats read
// files there that runc does not report. The shim never computes the path from the spec's
// cgroupsPath (systemd's "slice:prefix:name" form, nesting and cgroup namespaces all differ);
// /proc/<pid>/cgroup and the mount table say where the kernel put the process.
import { existsSync, readFileSync } from "node:fs";
import { join, posix } from "node:path";

/** runc's own test (cgroups.IsCgroup2UnifiedMode): the unified hierarchy is mounted at /sys/fs/cgroup. */
export function isUnifiedHost(root = "/sys/fs/cgroup"): boolean {
  return existsSync(join(root, "cgroup.controllers"));
}

export interface CgroupEntry {
  /** "" for the unified (v2) hierarchy. */
  controllers: string[];
  path: string;
}

/** Parses /proc/<pid>/cgroup: "hierarchy-id:controller,list:/path" per line. */
export function parseProcCgroup(text: string): CgroupEntry[] {
  const out: CgroupEntry[] = [];
  for (const line of text.split("\n")) {
    const first = line.indexOf(":");
    const second = line.indexOf(":", first + 1);
    if (first < 0 || second < 0) continue;
    const list = line.slice(first + 1, second);
    out.push({ controllers: list === "" ? [] : list.split(","), path: line.slice(second + 1) });
  }
  return out;
}

export interface CgroupMount {
  /** Where it is mounted. */
  mountPoint: string;
  /** The cgroup the mount shows at its mount point ("/" unless a cgroup namespace or bind mount). */
  root: string;
  /** v1: the controllers of this hierarchy (super options); v2: []. */
  controllers: string[];
  version: 1 | 2;
}

/** The cgroup mounts of /proc/self/mountinfo (fields: id parent dev root mountpoint … - fstype src superopts). */
export function parseCgroupMounts(mountinfo: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of mountinfo.split("\n")) {
    const dash = line.indexOf(" - ");
    if (dash < 0) continue;
    const pre = line.slice(0, dash).split(" ");
    const post = line.slice(dash + 3).split(" ");
    const fstype = post[0];
    if (fstype !== "cgroup" && fstype !== "cgroup2") continue;
    const root = unescapeMountField(pre[3] ?? "/");
    const mountPoint = unescapeMountField(pre[4] ?? "");
    const controllers =
      fstype === "cgroup"
        ? (post[2] ?? "").split(",").filter((o) => !["rw", "ro"].includes(o) && !o.includes("="))
        : [];
    // name=systemd is a hierarchy without controllers; keep its name for completeness.
    for (const o of (post[2] ?? "").split(",")) if (o.startsWith("name=")) controllers.push(o);
    out.push({ mountPoint, root, controllers, version: fstype === "cgroup2" ? 2 : 1 });
  }
  return out;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

export interface MemoryCgroup {
  version: 1 | 2;
  /** The cgroup's directory in this mount namespace, e.g. /sys/fs/cgroup/memory/ns/id. */
  dir: string;
}

/**
 * The directory of the memory cgroup `pid` is in: the v1 memory hierarchy if one is mounted
 * (hybrid hosts keep memory there), else the unified hierarchy. Undefined when neither is found.
 */
export function memoryCgroupOf(procCgroup: string, mountinfo: string): MemoryCgroup | undefined {
  const entries = parseProcCgroup(procCgroup);
  const mounts = parseCgroupMounts(mountinfo);
  const v1 = mounts.find((m) => m.version === 1 && m.controllers.includes("memory"));
  if (v1) {
    const entry = entries.find((e) => e.controllers.includes("memory"));
    const dir = entry && joinUnderMount(v1, entry.path);
    return dir ? { version: 1, dir } : undefined;
  }
  const v2 = mounts.find((m) => m.version === 2);
  const entry = entries.find((e) => e.controllers.length === 0);
  const dir = v2 && entry && joinUnderMount(v2, entry.path);
  return dir ? { version: 2, dir } : undefined;
}

/** The mount shows the cgroup `mount.root` at its mount point; paths outside it are unreachable. */
function joinUnderMount(mount: CgroupMount, cgroupPath: string): string | undefined {
  const root = mount.root === "/" ? "" : mount.root;
  if (root && cgroupPath !== root && !cgroupPath.startsWith(`${root}/`)) return undefined;
  const rel = cgroupPath.slice(root.length);
  // A process's cgroup path never holds "..", but never let one escape the mount either.
  const normal = posix.normalize(`/${rel}`);
  return posix.join(mount.mountPoint, normal);
}

/** memoryCgroupOf for a live process; undefined when it is gone or has no memory cgroup. */
export function memoryCgroupOfPid(pid: number): MemoryCgroup | undefined {
  let procCgroup: string;
  let mountinfo: string;
  try {
    procCgroup = readFileSync(`/proc/${pid}/cgroup`, "utf8");
    mountinfo = readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return undefined;
  }
  return memoryCgroupOf(procCgroup, mountinfo);
}

/** Parses "key value" lines (memory.oom_control, memory.events, memory.stat) into numbers. */
export function parseFlatKeyed(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const [key, value] = line.trim().split(/\s+/);
    if (!key || value === undefined) continue;
    const n = Number(value);
    if (Number.isFinite(n)) out[key] = n;
  }
  return out;
}
