// File-by-file descriptions of a tree, for comparing an unpacked rootfs with a reference one
// (type, mode, uid/gid, size, content hash, link target, device numbers, xattrs except overlay's).

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, readlinkSync, type Stats } from "node:fs";
import { join } from "node:path";

export interface FileDesc {
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  link?: string;
  rdev?: number;
  xattrs?: Record<string, string>;
}

function typeOf(st: Stats): string {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isCharacterDevice()) return "char";
  if (st.isBlockDevice()) return "block";
  if (st.isFIFO()) return "fifo";
  return "socket";
}

/** All xattrs below `root` (not following symlinks), by path relative to root, overlay's left out. */
function xattrsOf(root: string): Map<string, Record<string, string>> {
  const out = execFileSync(
    "getfattr",
    ["-R", "-P", "-h", "-d", "-m", "-", "-e", "hex", "--absolute-names", root],
    {
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  const map = new Map<string, Record<string, string>>();
  let cur: Record<string, string> | undefined;
  for (const line of out.split("\n")) {
    if (line.startsWith("# file: ")) {
      const p = line.slice(8);
      const rel = p === root ? "" : p.slice(root.length + 1);
      cur = {};
      map.set(rel, cur);
      continue;
    }
    const m = /^([^=]+)=(.*)$/.exec(line);
    if (m && cur && !m[1]!.startsWith("trusted.overlay.")) cur[m[1]!] = m[2]!;
  }
  return map;
}

export function describeTree(root: string): Map<string, FileDesc> {
  const xattrs = xattrsOf(root);
  const out = new Map<string, FileDesc>();
  const walk = (rel: string) => {
    const abs = rel === "" ? root : join(root, rel);
    const st = lstatSync(abs);
    const d: FileDesc = { type: typeOf(st), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
    if (st.isFile()) {
      d.size = st.size;
      d.sha256 = createHash("sha256").update(readFileSync(abs)).digest("hex");
    }
    if (st.isSymbolicLink()) d.link = readlinkSync(abs);
    if (st.isCharacterDevice() || st.isBlockDevice()) d.rdev = st.rdev;
    const x = xattrs.get(rel);
    if (x && Object.keys(x).length > 0) d.xattrs = x;
    out.set(rel === "" ? "." : rel, d);
    if (st.isDirectory())
      for (const name of readdirSync(abs).sort()) walk(rel === "" ? name : `${rel}/${name}`);
  };
  walk("");
  return out;
}

/** Differences between two descriptions, one line each (empty when the trees match). */
export function diffTrees(want: Map<string, FileDesc>, got: Map<string, FileDesc>): string[] {
  const problems: string[] = [];
  for (const [p, w] of want) {
    const g = got.get(p);
    if (!g) problems.push(`missing ${p}`);
    else if (JSON.stringify(w) !== JSON.stringify(g))
      problems.push(`${p}: want ${JSON.stringify(w)} got ${JSON.stringify(g)}`);
  }
  for (const p of got.keys()) if (!want.has(p)) problems.push(`extra ${p}`);
  return problems;
}
