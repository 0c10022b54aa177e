// A tree described file by file, for comparing an unpacked rootfs with containerd's: one line
// "path type mode uid:gid size sha256|target links xattrs" per entry, sorted (GNU find, sha256sum and
// getfattr; overlayfs' own trusted.overlay.* attributes left out). Used by images-ctr.test.ts
// and daemon-images-vs-ctr.test.ts.

import { join } from "node:path";
import { execa } from "execa";

const run = async (cmd: string, args: string[]) => {
  const r = await execa(cmd, args, { reject: false, stdin: "ignore" });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return String(r.stdout);
};

/** Every xattr below `root` (symlinks not followed), "name=0xhex,…" by relative path. */
async function xattrs(root: string): Promise<Map<string, string>> {
  const out = await run("getfattr", [
    "-R",
    "-P",
    "-h",
    "-d",
    "-m",
    "-",
    "-e",
    "hex",
    "--absolute-names",
    root,
  ]);
  const map = new Map<string, string[]>();
  let cur: string[] | undefined;
  for (const line of out.split("\n")) {
    if (line.startsWith("# file: ")) {
      const p = line.slice(8);
      cur = [];
      map.set(p === root ? "" : p.slice(root.length + 1), cur);
      continue;
    }
    if (cur && /^[^=]+=/.test(line) && !line.startsWith("trusted.overlay.")) cur.push(line);
  }
  return new Map([...map].map(([p, l]) => [p, l.sort().join(",")]));
}

/** Lines "path type mode uid:gid size sha256|target nLINKS xattrs" of a tree, sorted. */
export async function tree(root: string): Promise<string> {
  const list = await run("find", [root, "-printf", "%P\\t%y\\t%m\\t%U:%G\\t%s\\t%l\\t%n\\n"]);
  const attrs = await xattrs(root);
  const lines: string[] = [];
  for (const line of list.split("\n").sort()) {
    const [p, type, mode, owner, size, link, nlink] = line.split("\t");
    if (p === undefined || p === "") continue;
    let extra = link ?? "";
    if (type === "f") extra = (await run("sha256sum", [join(root, p)])).split(" ")[0]!;
    // Links counted for all but directories (an overlay's merged directory counts its own way).
    const links = type === "d" ? "" : `n${nlink}`;
    lines.push([p, type, mode, owner, type === "d" ? "" : size, extra, links, attrs.get(p) ?? ""].join(" "));
  }
  return lines.join("\n");
}

/** The first `max` differences between two tree() results ("- want" / "+ got" by path). */
export function treeDiff(want: string, got: string, max = 20): string[] {
  const key = (l: string) => l.split(" ")[0]!;
  const w = new Map(want.split("\n").map((l) => [key(l), l]));
  const g = new Map(got.split("\n").map((l) => [key(l), l]));
  const out: string[] = [];
  for (const p of [...new Set([...w.keys(), ...g.keys()])].sort()) {
    if (w.get(p) === g.get(p)) continue;
    if (w.has(p)) out.push(`- ${w.get(p)}`);
    if (g.has(p)) out.push(`+ ${g.get(p)}`);
    if (out.length >= max) break;
  }
  return out;
}
