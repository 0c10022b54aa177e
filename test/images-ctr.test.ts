// @tsrunc/images against containerd 1.6: an image built with umoci from busybox-static (with a
// second layer of whiteouts), copied by skopeo to an oci-archive, imported and unpacked by us,
// exported by us, then `ctr images import`ed and run by `ctr run` with the Go shim; containerd's
// own unpacked snapshot is compared file by file with ours, and a container also runs on our
// snapshot's overlay mounts.

import { createReadStream, createWriteStream, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ContentStore,
  exportArchive,
  importArchive,
  mountAll,
  OverlaySnapshotter,
  unmountAll,
  unpack,
} from "@tsrunc/images";
import { execa } from "execa";
import t from "tap";
import { startContainerd } from "./helpers/containerd.js";
import { tree } from "./helpers/tree-compare.js";

t.setTimeout(300_000);

const run = async (cmd: string, args: string[]) => {
  const r = await execa(cmd, args, { reject: false, stdin: "ignore" });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
};

const base = await mkdtemp(join(tmpdir(), "tsrunc-ctr-img-"));
t.teardown(() => rm(base, { recursive: true, force: true }));

async function buildImage(): Promise<string> {
  const layout = join(base, "oci");
  await run("umoci", ["init", "--layout", layout]);
  await run("umoci", ["new", "--image", `${layout}:img`]);
  await run("umoci", [
    "config",
    "--image",
    `${layout}:img`,
    "--config.cmd",
    "/bin/sh",
    "--config.env",
    "PATH=/bin",
  ]);
  const b1 = join(base, "b1");
  await run("umoci", ["unpack", "--image", `${layout}:img`, b1]);
  const r = join(b1, "rootfs");
  for (const d of ["bin", "etc", "tmp", "gone"]) mkdirSync(join(r, d), { recursive: true });
  writeFileSync(join(r, "bin/busybox"), readFileSync("/bin/busybox"), { mode: 0o755 });
  for (const c of ["sh", "cat", "ls", "echo"]) await run("ln", ["-s", "busybox", join(r, "bin", c)]);
  writeFileSync(join(r, "etc/greeting"), "hello from layer 1\n");
  writeFileSync(join(r, "gone/file"), "x");
  await run("umoci", ["repack", "--image", `${layout}:img`, b1]);
  const b2 = join(base, "b2");
  await run("umoci", ["unpack", "--image", `${layout}:img`, b2]);
  await rm(join(b2, "rootfs/gone"), { recursive: true });
  writeFileSync(join(b2, "rootfs/etc/greeting"), "hello from layer 2\n");
  await run("umoci", ["repack", "--image", `${layout}:img`, b2]);
  const archive = join(base, "img.tar");
  await run("skopeo", [
    "--insecure-policy",
    "copy",
    `oci:${layout}:img`,
    `oci-archive:${archive}:tsrunc.test/img:1`,
  ]);
  return archive;
}

t.test("our export is imported and run by ctr; containerd's snapshot equals ours", async (t) => {
  const archive = await buildImage();
  const store = await ContentStore.open(join(base, "content"));
  const snap = await OverlaySnapshotter.open(join(base, "snap"));
  t.teardown(() => snap.close());
  const { images } = await importArchive(createReadStream(archive), { store });
  t.equal(images[0]?.name, "tsrunc.test/img:1");
  const u = await unpack({ store, snapshotter: snap, target: images[0]!.target });
  const exported = join(base, "export.tar");
  await exportArchive(images, createWriteStream(exported), { store });

  const cd = await startContainerd(t);
  const imp = await cd.ctr(["images", "import", exported], { timeout: 120_000 });
  t.equal(imp.exitCode, 0, `ctr images import: ${imp.stdout} ${imp.stderr}`);
  const ls = await cd.ctr(["images", "ls", "-q"]);
  t.match(ls.stdout, /^tsrunc\.test\/img:1$/m);
  const runRes = await cd.ctr([
    "run",
    "--rm",
    "tsrunc.test/img:1",
    "c1",
    "/bin/sh",
    "-c",
    "cat /etc/greeting; ls /gone 2>&1; exit 0",
  ]);
  t.equal(runRes.exitCode, 0, runRes.stderr);
  t.match(runRes.stdout, /hello from layer 2/);
  t.match(runRes.stdout, /No such file or directory/, "the whiteout hides /gone");

  // containerd's unpack of our export, viewed and mounted, against ours
  const view = await cd.ctr(["snapshots", "--snapshotter", "overlayfs", "view", "cview", u.chainId]);
  t.equal(view.exitCode, 0, `ctr snapshots view ${u.chainId}: ${view.stderr}`);
  const theirs = join(base, "theirs");
  const ours = join(base, "ours");
  mkdirSync(theirs);
  mkdirSync(ours);
  const mounts = await cd.ctr(["snapshots", "--snapshotter", "overlayfs", "mounts", theirs, "cview"]);
  t.equal(mounts.exitCode, 0, mounts.stderr);
  const argv = mounts.stdout.trim().split(/\s+/);
  t.equal(argv[0], "mount");
  await run("mount", argv.slice(1));
  await snap.view("ours", u.chainId);
  await mountAll(await snap.mounts("ours"), ours);
  try {
    const [a, b] = [await tree(theirs), await tree(ours)];
    t.ok(a.split("\n").length > 5);
    t.equal(b, a, "our unpacked tree equals containerd's");
  } finally {
    await unmountAll(theirs);
    await unmountAll(ours);
  }

  // a container on our own snapshot's mounts
  await snap.prepare("rootfs-c2", u.chainId);
  const rootfs = join(base, "rootfs-c2");
  mkdirSync(rootfs);
  await mountAll(await snap.mounts("rootfs-c2"), rootfs);
  try {
    const r2 = await cd.ctr([
      "run",
      "--rm",
      "--rootfs",
      rootfs,
      "c2",
      "/bin/sh",
      "-c",
      "cat /etc/greeting; echo w > /tmp/w",
    ]);
    t.equal(r2.exitCode, 0, r2.stderr);
    t.match(r2.stdout, /hello from layer 2/);
  } finally {
    await unmountAll(rootfs);
  }
  const upper = (await snap.applyTarget("rootfs-c2")).dir;
  t.equal(
    readFileSync(join(upper, "tmp/w"), "utf8"),
    "w\n",
    "the container's write landed in the active snapshot",
  );
});
