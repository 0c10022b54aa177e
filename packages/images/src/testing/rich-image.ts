// The image real-images.test.ts unpacks, built with tools no one here wrote (umoci, GNU tar):
// layer 1 busybox, symlinks, hardlinks, a fifo, a device, xattrs (security.capability too),
// setuid, sticky, odd owners; layer 2 whiteouts and a directory replaced; layer 3 (GNU tar) an
// opaque directory, a new hardlink pair, an xattr via pax. Exported for the repo's tests that
// compare our unpack with containerd's (test/daemon-images-vs-ctr.test.ts).

import { linkSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";

const run = async (cmd: string, args: string[]) => {
  const r = await execa(cmd, args, { reject: false, stdin: "ignore" });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
};

/**
 * Builds the three-layer image as `<base>/oci:img` (scratch directories under `base`) and returns
 * the layout. Layer 1 (umoci repack): busybox, symlinks, hardlinks, a fifo, a device, xattrs, odd
 * modes/owners.
 */
export async function buildRichImage(base: string): Promise<string> {
  const layout = join(base, "oci");
  await run("umoci", ["init", "--layout", layout]);
  await run("umoci", ["new", "--image", `${layout}:img`]);
  const b1 = join(base, "b1");
  await run("umoci", ["unpack", "--image", `${layout}:img`, b1]);
  const r = join(b1, "rootfs");
  for (const d of ["bin", "etc", "olddir/sub", "replaced", "opaque/sub", "dev", "data"])
    mkdirSync(join(r, d), { recursive: true });
  writeFileSync(join(r, "bin/busybox"), readFileSync("/bin/busybox"), { mode: 0o755 });
  for (const c of ["sh", "ls", "cat", "echo", "true"]) await run("ln", ["-s", "busybox", join(r, "bin", c)]);
  writeFileSync(join(r, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  writeFileSync(join(r, "etc/deleteme"), "bye");
  writeFileSync(join(r, "olddir/sub/f"), "a");
  writeFileSync(join(r, "replaced/old1"), "old1");
  writeFileSync(join(r, "opaque/o1"), "o1");
  writeFileSync(join(r, "opaque/sub/o2"), "o2");
  writeFileSync(join(r, "data/h1"), "hardlinked");
  linkSync(join(r, "data/h1"), join(r, "data/h2"));
  await run("mkfifo", ["-m", "0620", join(r, "data/fifo")]);
  await run("mknod", ["-m", "0666", join(r, "dev/null"), "c", "1", "3"]);
  await run("setfattr", ["-n", "user.test", "-v", "hello", join(r, "data/h1")]);
  await run("setfattr", [
    "-n",
    "security.capability",
    "-v",
    "0x0100000200200000000000000000000000000000",
    join(r, "bin/busybox"),
  ]);
  await run("chown", ["1000:1001", join(r, "data")]);
  await run("chmod", ["1777", join(r, "data")]);
  await run("chmod", ["4755", join(r, "bin/busybox")]);
  await run("ln", ["-s", "../../../../../../etc/passwd", join(r, "etc/climbing-link")]); // harmless as a link
  await run("umoci", ["repack", "--image", `${layout}:img`, b1]);

  // Layer 2 (umoci repack): deletions (whiteouts) and a directory replaced by per-file whiteouts.
  const b2 = join(base, "b2");
  await run("umoci", ["unpack", "--image", `${layout}:img`, b2]);
  const r2 = join(b2, "rootfs");
  await rm(join(r2, "etc/deleteme"));
  await rm(join(r2, "olddir"), { recursive: true });
  await rm(join(r2, "replaced"), { recursive: true });
  mkdirSync(join(r2, "replaced"));
  writeFileSync(join(r2, "replaced/new1"), "new1");
  writeFileSync(join(r2, "data/new"), "more");
  await run("umoci", ["repack", "--image", `${layout}:img`, b2]);

  // Layer 3 (GNU tar, added raw): an opaque directory, a new hardlink pair, an xattr via pax.
  const s = join(base, "stage3");
  mkdirSync(join(s, "opaque"), { recursive: true });
  writeFileSync(join(s, "opaque/.wh..wh..opq"), "");
  writeFileSync(join(s, "opaque/fresh"), "fresh");
  linkSync(join(s, "opaque/fresh"), join(s, "opaque/fresh-link"));
  await run("setfattr", ["-n", "user.layer3", "-v", "0x00ff10", join(s, "opaque/fresh")]);
  await run("tar", [
    "--xattrs",
    "--xattrs-include=*",
    "--numeric-owner",
    "-C",
    s,
    "-cf",
    join(base, "layer3.tar"),
    ".",
  ]);
  await run("umoci", ["raw", "add-layer", "--image", `${layout}:img`, join(base, "layer3.tar")]);
  return layout;
}
