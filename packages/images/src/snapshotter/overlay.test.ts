import { spawn } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@tsrunc/ttrpc/status";
import t, { type Test } from "tap";
import { mountAll, unmountAll } from "./mount.js";
import { OverlaySnapshotter, type SnapshotterBackend } from "./overlay.js";

t.setTimeout(120_000);

async function tempRoot(t: Test): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "tsrunc-snap-"));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  return root;
}

async function mounted<T>(snap: OverlaySnapshotter, key: string, fn: (dir: string) => T): Promise<T> {
  const target = await mkdtemp(join(tmpdir(), "tsrunc-mnt-"));
  await mountAll(await snap.mounts(key), target);
  try {
    return fn(target);
  } finally {
    await unmountAll(target);
    await rm(target, { recursive: true, force: true });
  }
}

for (const backend of ["overlay", "copy"] as SnapshotterBackend[]) {
  t.test(`${backend}: prepare, apply by hand, commit, stack, view, mounts, usage, remove`, async (t) => {
    const root = await tempRoot(t);
    const snap = await OverlaySnapshotter.open(root, { backend });
    t.teardown(() => snap.close());
    t.equal(snap.backend, backend);

    const m0 = await snap.prepare("extract-1", undefined, { labels: { a: "b" } });
    t.same(m0, [{ type: "bind", source: join(root, "snapshots/1/fs"), options: ["rw", "rbind"] }]);
    const tgt0 = await snap.applyTarget("extract-1");
    t.same(tgt0, { dir: join(root, "snapshots/1/fs"), mode: "flat", parents: [] });
    writeFileSync(join(tgt0.dir, "base"), "L0");
    writeFileSync(join(tgt0.dir, "shadowed"), "old");
    await snap.commit("sha256:c1", "extract-1");
    t.equal((await snap.stat("sha256:c1")).kind, "committed");
    t.same((await snap.stat("sha256:c1")).labels, { a: "b" });
    await t.rejects(snap.mounts("sha256:c1"), { code: Code.FailedPrecondition });

    const m1 = await snap.prepare("extract-2", "sha256:c1");
    const tgt1 = await snap.applyTarget("extract-2");
    if (backend === "overlay") {
      const opts = m1[0]!.options.filter((o) => o !== "index=off");
      t.same(m1[0]!.type, "overlay");
      t.same(opts, [
        `workdir=${join(root, "snapshots/2/work")}`,
        `upperdir=${join(root, "snapshots/2/fs")}`,
        `lowerdir=${join(root, "snapshots/1/fs")}`,
      ]);
      t.same(tgt1, {
        dir: join(root, "snapshots/2/fs"),
        mode: "overlay",
        parents: [join(root, "snapshots/1/fs")],
      });
    } else {
      t.same(m1, [{ type: "bind", source: join(root, "snapshots/2/fs"), options: ["rw", "rbind"] }]);
      t.equal(
        readFileSync(join(tgt1.dir, "base"), "utf8"),
        "L0",
        "copy backend: the parent's tree is copied",
      );
    }
    writeFileSync(join(tgt1.dir, "shadowed"), "new");
    writeFileSync(join(tgt1.dir, "second"), "L1");
    await snap.commit("sha256:c2", "extract-2");
    t.same((await snap.stat("sha256:c2")).parent, "sha256:c1");

    // a view of one layer: a read-only bind of it
    const v1 = await snap.view("view-1", "sha256:c1");
    t.same(v1, [
      {
        type: "bind",
        source: join(root, backend === "overlay" ? "snapshots/1/fs" : "snapshots/3/fs"),
        options: ["ro", "rbind"],
      },
    ]);
    // a view of two layers: overlay of lowerdirs (newest first), no upper
    const v2 = await snap.view("view-2", "sha256:c2");
    if (backend === "overlay")
      t.same(
        v2[0]!.options.filter((o) => o !== "index=off"),
        [`lowerdir=${join(root, "snapshots/2/fs")}:${join(root, "snapshots/1/fs")}`],
      );
    await mounted(snap, "view-2", (dir) => {
      t.same(readdirSync(dir).sort(), ["base", "second", "shadowed"]);
      t.equal(readFileSync(join(dir, "shadowed"), "utf8"), "new");
      t.throws(() => writeFileSync(join(dir, "x"), "x"), { code: "EROFS" });
    });

    // a container's active snapshot on the chain
    await snap.prepare("container-1", "sha256:c2");
    await mounted(snap, "container-1", (dir) => {
      writeFileSync(join(dir, "written-by-container"), "c");
      t.equal(readFileSync(join(dir, "base"), "utf8"), "L0");
    });
    t.equal(
      readFileSync(join((await snap.applyTarget("container-1")).dir, "written-by-container"), "utf8"),
      "c",
    );

    const keys = (await snap.list()).map((i) => `${i.key}:${i.kind}`);
    t.same(keys, [
      "sha256:c1:committed",
      "sha256:c2:committed",
      "view-1:view",
      "view-2:view",
      "container-1:active",
    ]);
    const u = await snap.usage("sha256:c2");
    t.ok(u.inodes >= 3 && u.size > 0, `usage ${JSON.stringify(u)}`);
    t.ok((await snap.usage("container-1")).inodes >= 1);

    await t.rejects(snap.remove("sha256:c1"), { code: Code.FailedPrecondition }, "has children");
    for (const k of ["container-1", "view-2", "view-1", "sha256:c2", "sha256:c1"]) await snap.remove(k);
    t.same(await snap.list(), []);
    t.same(readdirSync(join(root, "snapshots")), []);
  });
}

t.test("errors carry containerd's codes", async (t) => {
  const root = await tempRoot(t);
  const snap = await OverlaySnapshotter.open(root);
  t.teardown(() => snap.close());
  await t.rejects(snap.prepare("a", "nope"), { code: Code.NotFound });
  await snap.prepare("a");
  await t.rejects(snap.prepare("a"), { code: Code.AlreadyExists });
  await t.rejects(snap.prepare("b", "a"), { code: Code.InvalidArgument }, "parent not committed");
  await snap.view("v");
  await t.rejects(snap.commit("c", "v"), { code: Code.FailedPrecondition }, "a view does not commit");
  await snap.prepare("b");
  await snap.commit("c", "a");
  await t.rejects(snap.commit("c", "b"), { code: Code.AlreadyExists });
  await t.rejects(snap.stat("zzz"), { code: Code.NotFound });
  await t.rejects(snap.remove("zzz"), { code: Code.NotFound });
  await t.rejects(snap.prepare(""), { code: Code.InvalidArgument });
  await t.rejects(snap.prepare("x\0y"), { code: Code.InvalidArgument });
  snap.close();
  const other: SnapshotterBackend = snap.backend === "overlay" ? "copy" : "overlay";
  await t.rejects(OverlaySnapshotter.open(root, { backend: other }), { code: Code.FailedPrecondition });
  const again = await OverlaySnapshotter.open(root);
  t.equal(again.backend, snap.backend, "the backend chosen once is kept");
  t.same(
    (await again.list()).map((i) => i.key),
    ["c", "v", "b"],
  );
  again.close();
});

t.test("a SIGKILL mid-prepare/commit/remove leaves rows and directories that match", async (t) => {
  const root = await tempRoot(t);
  const script = `
    import { OverlaySnapshotter } from ${JSON.stringify(new URL("./overlay.js", import.meta.url).href)};
    import { writeFileSync } from "node:fs";
    import { join } from "node:path";
    const snap = await OverlaySnapshotter.open(process.argv[1], { backend: "overlay" });
    let parent;
    for (let i = 0; ; i++) {
      await snap.prepare("x-" + i, parent);
      const t = await snap.applyTarget("x-" + i);
      for (let j = 0; j < 20; j++) writeFileSync(join(t.dir, "f" + j), "data" + i);
      await snap.commit("c-" + i, "x-" + i);
      await snap.view("v-" + i, "c-" + i);
      if (i % 2 === 0) await snap.remove("v-" + i);
      parent = "c-" + i;
      if (i === 5) process.stdout.write("going\\n");
    }
  `;
  for (let round = 0; round < 3; round++) {
    const child = spawn(process.execPath, ["--input-type=module", "-e", script, root], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
    await new Promise((r) => setTimeout(r, 50 + round * 40));
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const snap = await OverlaySnapshotter.open(root);
    const list = await snap.list();
    const dirs = readdirSync(join(root, "snapshots")).sort();
    t.ok(list.length > 0, `round ${round}: ${list.length} snapshots`);
    t.same(dirs.length, list.length, `round ${round}: one directory per row, nothing else`);
    for (const info of list) {
      if (info.kind === "committed") t.ok((await snap.usage(info.key)).inodes >= 1);
      if (info.kind !== "committed") t.ok((await snap.mounts(info.key)).length === 1);
    }
    // clean out so the next round starts from scratch (keys restart at 0)
    for (const info of list.reverse()) await snap.remove(info.key);
    t.same(readdirSync(join(root, "snapshots")), []);
    snap.close();
    t.ok(existsSync(join(root, "metadata.db")));
    t.ok(lstatSync(join(root, "snapshots")).isDirectory());
    mkdirSync(join(root, "snapshots", "new-leftover"));
    const s2 = await OverlaySnapshotter.open(root);
    t.same(readdirSync(join(root, "snapshots")), [], "a temp dir is removed at open");
    s2.close();
  }
});
