// Issue 11, item 6: the rootfs tsruncd unpacks from a registry equals containerd 1.6's own. The
// image of test/helpers/app-image.ts (umoci, busybox-static, a second layer with a whiteout) is
// pushed to a docker-registry on loopback; `tsctl images pull --plain-http` and `ctr images pull
// --plain-http` fetch the same reference. Both sides must name the same top chain id, and a
// read-only view of it taken through each one's Snapshots API (ours through @tsrunc/client,
// containerd's through `ctr snapshots view`), mounted, must be the same tree file by file: type,
// mode, uid/gid, size, content hash, link target, xattrs.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { connect } from "@tsrunc/client";
import { mountAll, unmountAll } from "@tsrunc/images";
import { execa } from "execa";
import t from "tap";
import { appImage } from "./helpers/app-image.js";
import { assertNoLeaks } from "./helpers/cleanup.js";
import { startContainerd } from "./helpers/containerd.js";
import { daemonEnv } from "./helpers/daemon.js";
import { tree, treeDiff } from "./helpers/tree-compare.js";

t.setTimeout(120_000);

t.test("tsruncd's unpacked image equals containerd's snapshot of the same pull", async (t) => {
  const img = await appImage(t);
  const d = await daemonEnv(t);
  await d.start();
  const client = await connect({ address: d.address, namespace: d.namespace });
  const cd = await startContainerd(t);
  const ours = join(d.root.path, "ours");
  const theirs = join(cd.root, "theirs");
  mkdirSync(ours);
  mkdirSync(theirs);
  let ourView = false;
  let theirView = false;
  // On failure too: unmount, drop the views, then the daemon's client (the daemon, containerd
  // and the registry stop in their own teardowns, registered before this one, so after it).
  t.teardown(async () => {
    await unmountAll(ours).catch(() => {});
    await unmountAll(theirs).catch(() => {});
    if (ourView) await client.snapshots.removeIfExists("vs-ctr-view").catch(() => {});
    if (theirView) await cd.ctr(["snapshots", "--snapshotter", "overlayfs", "rm", "vs-ctr-view"]);
    await client.close();
  });

  // tsruncd
  const pull = await d.tsctl(["images", "pull", "--plain-http", img.ref], { timeoutMs: 60_000 });
  t.equal(pull.exitCode, 0, `tsctl images pull: ${pull.stderr}`);
  const inspect = await d.tsctl(["images", "inspect", img.ref]);
  t.equal(inspect.exitCode, 0, inspect.stderr);
  const chainId = String(JSON.parse(inspect.stdout).chainId);
  t.match(chainId, /^sha256:[0-9a-f]{64}$/, "tsctl images inspect names the top chain id");
  await mountAll(await client.snapshots.view({ key: "vs-ctr-view", parent: chainId }), ours);
  ourView = true;
  const viaMounts = await client.snapshots.mounts("vs-ctr-view");
  t.ok(viaMounts.length > 0, "Snapshots.Mounts answers for the view");

  // containerd 1.6, same reference, same registry
  const cpull = await cd.ctr(["images", "pull", "--plain-http", img.ref], { timeout: 60_000 });
  t.equal(cpull.exitCode, 0, `ctr images pull: ${cpull.stderr}`);
  const snaps = await cd.ctr(["snapshots", "--snapshotter", "overlayfs", "ls"]);
  t.equal(snaps.exitCode, 0, snaps.stderr);
  t.match(
    snaps.stdout,
    new RegExp(`^${chainId}\\s+\\S+\\s+Committed`, "m"),
    "containerd committed the same chain id",
  );
  const view = await cd.ctr(["snapshots", "--snapshotter", "overlayfs", "view", "vs-ctr-view", chainId]);
  t.equal(view.exitCode, 0, `ctr snapshots view ${chainId}: ${view.stderr}`);
  theirView = view.exitCode === 0;
  const mounts = await cd.ctr(["snapshots", "--snapshotter", "overlayfs", "mounts", theirs, "vs-ctr-view"]);
  t.equal(mounts.exitCode, 0, mounts.stderr);
  const argv = mounts.stdout.trim().split(/\s+/);
  t.equal(argv[0], "mount");
  const m = await execa("mount", argv.slice(1), { reject: false, stdin: "ignore" });
  t.equal(m.exitCode, 0, `${mounts.stdout}: ${m.stderr}`);

  const [want, got] = [await tree(theirs), await tree(ours)];
  t.ok(want.split("\n").length > 20, "containerd's tree is the image's (busybox and its applets)");
  t.match(want, /^etc\/layer2 f /m, "the second layer is in containerd's tree");
  t.notMatch(want, /^gone/m, "the whiteout hid /gone in containerd's tree");
  const diff = treeDiff(want, got);
  t.same(
    diff,
    [],
    `our unpacked tree equals containerd's file by file${diff.length ? `:\n${diff.join("\n")}` : ""}`,
  );

  await unmountAll(ours);
  await unmountAll(theirs);
  await client.snapshots.remove("vs-ctr-view");
  ourView = false;
  const rmv = await cd.ctr(["snapshots", "--snapshotter", "overlayfs", "rm", "vs-ctr-view"]);
  t.equal(rmv.exitCode, 0, rmv.stderr);
  theirView = false;
  await client.close();
  t.same(await cd.stop(), [], "containerd stopped with nothing to complain about");
  assertNoLeaks(t, cd.scope);
  await d.finish(t);
});
