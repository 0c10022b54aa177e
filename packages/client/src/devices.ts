// The host's device nodes under /dev, for privileged containers (what containerd's
// WithHostDevices adds to linux.devices): character and block devices only, skipping the
// directories that are per-container mounts anyway (pts, shm, mqueue, fd) and tool state
// directories, and /dev/console (runc sets that up itself).

import { lstatSync, readdirSync } from "node:fs";
import { join } from "node:path";

export interface OciLinuxDevice {
  type: "c" | "b";
  path: string;
  major: number;
  minor: number;
  fileMode: number;
  uid: number;
  gid: number;
}

const SKIPPED_DIRS = new Set(["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"]);
const S_IFMT = 0o170000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

/** glibc's major()/minor() of a dev_t (Node gives st_rdev as a number; it fits in 53 bits). */
export function splitDevNumber(rdev: number): { major: number; minor: number } {
  const dev = BigInt(rdev);
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

/** Every device node below `dir` (default /dev); unreadable entries are skipped. */
export function hostDevices(dir = "/dev"): OciLinuxDevice[] {
  const out: OciLinuxDevice[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names.sort()) {
    const path = join(dir, name);
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(path);
    } catch {
      continue;
    }
    if (st.isDirectory()) {
      if (!SKIPPED_DIRS.has(name)) out.push(...hostDevices(path));
      continue;
    }
    if (name === "console") continue;
    const kind = st.mode & S_IFMT;
    if (kind !== S_IFCHR && kind !== S_IFBLK) continue;
    const { major, minor } = splitDevNumber(st.rdev);
    out.push({
      type: kind === S_IFCHR ? "c" : "b",
      path,
      major,
      minor,
      fileMode: st.mode & ~S_IFMT,
      uid: st.uid,
      gid: st.gid,
    });
  }
  return out;
}
