// A minimal busybox rootfs for containers in tests: /bin/busybox (Debian's busybox-static) plus a
// symlink for every applet (all in /bin, and in their canonical place: /sbin/ip, /usr/bin/env, ...),
// /bin/sh, /etc/passwd and /etc/group, and the usual empty mount points (/proc /sys /dev /tmp ...).
// The layout is worked out once per process (`busybox --list-full`); each rootfs is then one
// copied binary and a few hundred symlinks, a few milliseconds.

import * as fs from "node:fs";
import * as path from "node:path";
import { execaSync } from "execa";

export const BUSYBOX = "/bin/busybox";

const DIRS = ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "root", "run", "var", "tmp"];
const FILES: Record<string, string> = {
  "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
  "etc/group": "root:x:0:\nnogroup:x:65534:\n",
  "etc/hostname": "tsrunc\n",
  "etc/hosts": "127.0.0.1 localhost\n",
};

interface Layout {
  dirs: string[];
  /** [link path relative to the rootfs, link target] */
  links: Array<[string, string]>;
}

let layout: Layout | undefined;

function getLayout(): Layout {
  if (layout) return layout;
  const full = String(execaSync(BUSYBOX, ["--list-full"]).stdout)
    .split("\n")
    .filter(Boolean);
  const links = new Set<string>(["bin/sh"]);
  for (const rel of full) {
    const name = path.basename(rel);
    if (name === "busybox") continue;
    links.add(`bin/${name}`); // every applet also in /bin, so /bin/X always works
    links.add(rel);
  }
  const dirs = new Set(DIRS);
  for (const l of links) dirs.add(path.dirname(l));
  layout = {
    dirs: [...dirs].sort(),
    links: [...links].sort().map((l) => [l, path.relative(path.dirname(`/${l}`), "/bin/busybox")]),
  };
  return layout;
}

/**
 * Create a busybox rootfs at `dir` (created if missing; must be empty) and return `dir`. The copy
 * is private to the caller: containers may write to it.
 */
export function makeBusyboxRootfs(dir: string): string {
  const { dirs, links } = getLayout();
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  if (fs.readdirSync(dir).length > 0) throw new Error(`rootfs dir ${dir} is not empty`);
  fs.chmodSync(dir, 0o755);
  for (const d of dirs) fs.mkdirSync(path.join(dir, d), { recursive: true, mode: 0o755 });
  fs.chmodSync(path.join(dir, "tmp"), 0o1777);
  fs.copyFileSync(BUSYBOX, path.join(dir, "bin/busybox"), fs.constants.COPYFILE_FICLONE);
  fs.chmodSync(path.join(dir, "bin/busybox"), 0o755);
  for (const [link, target] of links) fs.symlinkSync(target, path.join(dir, link));
  for (const [file, text] of Object.entries(FILES)) fs.writeFileSync(path.join(dir, file), text);
  return dir;
}
