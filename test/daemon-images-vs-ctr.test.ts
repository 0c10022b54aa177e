// Issue 11, item 6: the rootfs tsruncd unpacks from a registry equals containerd 1.6's own. Two
// images, each pushed by skopeo to a docker-registry on loopback: test/helpers/app-image.ts's
// (umoci, busybox-static, a second layer with a whiteout) and @tsrunc/images' rich one (symlinks,
// hardlinks, a fifo, a device, xattrs with security.capability, setuid, sticky, odd owners,
// whiteouts, a replaced and an opaque directory). `tsctl images pull --plain-http` and `ctr
// images pull --plain-http` fetch the same reference; both sides must name the same top chain
// id, and a read-only view of it taken through each one's Snapshots API (ours through
// @tsrunc/client, containerd's through `ctr snapshots view`), mounted, must be the same tree file
// by file: type, mode, uid/gid, size, content hash, link target, link count, xattrs.

import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { connect } from "@tsrunc/client";
import { mountAll, unmountAll } from "@tsrunc/images";
import { startRegistry } from "@tsrunc/images/distribution/test-registry";
import { buildRichImage } from "@tsrunc/images/testing/rich-image";
import { execa } from "execa";
import t, { type Test } from "tap";
import { appImage } from "./helpers/app-image.js";
import { assertNoLeaks } from "./helpers/cleanup.js";
import { startContainerd } from "./helpers/containerd.js";
import { daemonEnv } from "./helpers/daemon.js";
import { tree, treeDiff } from "./helpers/tree-compare.js";

t.setTimeout(120_000);

const run = async (cmd: string, args: string[]) => {
  const r = await execa(cmd, args, { reject: false, stdin: "ignore" });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return String(r.stdout);
};

const d = await daemonEnv(t);
await d.start();
const client = await connect({ address: d.address, namespace: d.namespace });
t.teardown(() => client.close());
const cd = await startContainerd(t);
const SN = ["snapshots", "--snapshotter", "overlayfs"];

/** Pulls `ref` on both sides, views and mounts the top chain id on both, returns the two trees. */
async function pullAndCompare(t: Test, ref: string, key: string): Promise<{ want: string; got: string }> {
  const ours = join(d.root.path, `ours-${key}`);
  const theirs = join(cd.root, `theirs-${key}`);
  mkdirSync(ours);
  mkdirSync(theirs);
  let ourView = false;
  let theirView = false;
  // On failure too (the daemon, containerd and the registries stop in the file's teardowns).
  t.teardown(async () => {
    await unmountAll(ours).catch(() => {});
    await unmountAll(theirs).catch(() => {});
    if (ourView) await client.snapshots.removeIfExists(key).catch(() => {});
    if (theirView) await cd.ctr([...SN, "rm", key]);
  });

  // tsruncd
  const pull = await d.tsctl(["images", "pull", "--plain-http", ref], { timeoutMs: 60_000 });
  t.equal(pull.exitCode, 0, `tsctl images pull: ${pull.stderr}`);
  const inspect = await d.tsctl(["images", "inspect", ref]);
  t.equal(inspect.exitCode, 0, inspect.stderr);
  const chainId = String(JSON.parse(inspect.stdout).chainId);
  t.match(chainId, /^sha256:[0-9a-f]{64}$/, "tsctl images inspect names the top chain id");
  await client.snapshots.view({ key, parent: chainId });
  ourView = true;
  await mountAll(await client.snapshots.mounts(key), ours);

  // containerd 1.6, same reference, same registry
  const cpull = await cd.ctr(["images", "pull", "--plain-http", ref], { timeout: 60_000 });
  t.equal(cpull.exitCode, 0, `ctr images pull: ${cpull.stderr}`);
  const snaps = await cd.ctr([...SN, "ls"]);
  t.equal(snaps.exitCode, 0, snaps.stderr);
  t.match(
    snaps.stdout,
    new RegExp(`^${chainId}\\s+\\S+\\s+Committed`, "m"),
    "containerd committed the same chain id",
  );
  const view = await cd.ctr([...SN, "view", key, chainId]);
  t.equal(view.exitCode, 0, `ctr snapshots view ${chainId}: ${view.stderr}`);
  theirView = view.exitCode === 0;
  const mounts = await cd.ctr([...SN, "mounts", theirs, key]);
  t.equal(mounts.exitCode, 0, mounts.stderr);
  const argv = mounts.stdout.trim().split(/\s+/);
  t.equal(argv[0], "mount");
  const m = await execa("mount", argv.slice(1), { reject: false, stdin: "ignore" });
  t.equal(m.exitCode, 0, `${mounts.stdout}: ${m.stderr}`);

  const [want, got] = [await tree(theirs), await tree(ours)];
  const diff = treeDiff(want, got);
  t.same(
    diff,
    [],
    `our unpacked tree equals containerd's file by file${diff.length ? `:\n${diff.join("\n")}` : ""}`,
  );

  await unmountAll(ours);
  await unmountAll(theirs);
  await client.snapshots.remove(key);
  ourView = false;
  const rmv = await cd.ctr([...SN, "rm", key]);
  t.equal(rmv.exitCode, 0, rmv.stderr);
  theirView = false;
  return { want, got };
}

t.test("the app image (a whiteout layer)", async (t) => {
  const img = await appImage(t);
  const { want } = await pullAndCompare(t, img.ref, "vs-ctr-app");
  t.ok(want.split("\n").length > 20, "containerd's tree is the image's (busybox and its applets)");
  t.match(want, /^etc\/layer2 f /m, "the second layer is in containerd's tree");
  t.notMatch(want, /^gone/m, "the whiteout hid /gone in containerd's tree");
});

t.test("the rich image (links, devices, xattrs, odd modes, whiteouts, an opaque dir)", async (t) => {
  const dir = join(d.root.path, "rich");
  mkdirSync(join(dir, "registry"), { recursive: true });
  const layout = await buildRichImage(dir);
  const reg = await startRegistry(t, { rootdir: join(dir, "registry") });
  const ref = `${reg.host}/tsrunc/rich:1`;
  await run("skopeo", [
    "--insecure-policy",
    "copy",
    "--quiet",
    "--dest-tls-verify=false",
    `oci:${layout}:img`,
    `docker://${ref}`,
  ]);
  const { want } = await pullAndCompare(t, ref, "vs-ctr-rich");
  // What makes the image rich is in containerd's tree (and so, being equal, in ours).
  t.match(want, /^bin\/busybox f 4755 0:0 .* security\.capability=0x01/m, "setuid + security.capability");
  t.match(want, /^data d 1777 1000:1001 /m, "sticky, odd owner");
  t.match(want, /^data\/h1 f .* user\.test=0x68656c6c6f$/m, "a user xattr");
  t.match(want, /^data\/h2 f .* n2 /m, "a hardlink");
  t.match(want, /^opaque\/fresh-link f .* n2 /m, "a hardlink of layer 3");
  t.match(want, /^data\/fifo p 620 /m, "a fifo");
  t.match(want, /^dev\/null c 666 /m, "a device");
  t.match(want, /^opaque\/fresh f .* user\.layer3=0x00ff10$/m, "an xattr from a pax header");
  t.notMatch(want, /^(etc\/deleteme|olddir|replaced\/old1|opaque\/o1|opaque\/sub) /m, "whiteouts and opaque");
  t.match(want, /^replaced\/new1 f /m, "a directory replaced");
});

t.test("the end: nothing left", async (t) => {
  await client.close();
  t.same(await cd.stop(), [], "containerd stopped with nothing to complain about");
  assertNoLeaks(t, cd.scope);
  await d.finish(t);
});
