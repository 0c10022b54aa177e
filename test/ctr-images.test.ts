// containerd 1.6's ctr drives tsruncd's image half over containerd's gRPC API (issue 15):
// `ctr images import` (Content.Write with digests unknown beforehand, Images, then ctr's own
// unpack: Snapshots.Prepare → Diff.Apply → Snapshots.Commit, and Content.Update for its labels),
// `ctr images ls`, `ctr content ls`, `ctr snapshots ls/info/usage`, `ctr run IMAGE` with our
// runtime, `ctr images pull --plain-http` from a local docker-registry, `ctr images rm` and the GC
// that then frees content and snapshots; images crossing between ctr and tsctl both ways; a GC
// running over and over while ctr imports and pulls. One image (helpers/app-image.ts: two layers,
// the second with a whiteout, Entrypoint/Cmd/Env/User) built once for the file; a daemon per test.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chainIds } from "@tsrunc/images";
import { execa } from "execa";
import t, { type Test } from "tap";
import { type AppImage, appImage, GREETING_FILE } from "./helpers/app-image.js";
import { type GrpcDaemon, startDaemonWithGrpc } from "./helpers/ctr-daemon.js";
import { waitFor } from "./helpers/wait.js";

const RUNTIME = ["--runtime", "io.containerd.tsrunc.v2"];
const GOARCH: Record<string, string> = { x64: "amd64", arm64: "arm64" };
const long = { timeoutMs: 180_000 };

let img: AppImage;
/** The image as the OCI layout holds it: manifest, config, layers and what ctr should label. */
let want: {
  manifest: string;
  config: string;
  layers: string[];
  diffIds: string[];
  chains: string[];
};

t.before(async () => {
  img = await appImage(t);
  const blob = (d: string) => JSON.parse(readFileSync(join(img.layout, "blobs/sha256", d.slice(7)), "utf8"));
  const index = JSON.parse(readFileSync(join(img.layout, "index.json"), "utf8"));
  const m = index.manifests.find(
    (x: { annotations?: Record<string, string> }) =>
      x.annotations?.["org.opencontainers.image.ref.name"] === "app",
  );
  const manifest = blob(m.digest);
  const config = blob(manifest.config.digest);
  const diffIds: string[] = config.rootfs.diff_ids;
  want = {
    manifest: m.digest,
    config: manifest.config.digest,
    layers: manifest.layers.map((l: { digest: string }) => l.digest),
    diffIds,
    chains: chainIds(diffIds),
  };
});

const ok = (t: Test, r: { exitCode: number; stderr: string; command?: string }, what: string) =>
  t.equal(r.exitCode, 0, `${what}${r.exitCode ? `: ${r.command ?? ""}: ${r.stderr}` : ""}`);

const expectedRun = `entry:image\n${GREETING_FILE}`;

/** `ctr content ls` as digest → labels (parsed from "k=v,k=v"). */
async function contentLs(d: GrpcDaemon): Promise<Map<string, Record<string, string>>> {
  const r = await d.ctr(["content", "ls"]);
  if (r.exitCode !== 0) throw new Error(`${r.command}: ${r.stderr}`);
  const out = new Map<string, Record<string, string>>();
  for (const line of r.stdout.split("\n").slice(1)) {
    const cols = line.split("\t");
    if (!cols[0]?.startsWith("sha256:")) continue;
    const labels: Record<string, string> = {};
    const raw = cols.at(-1) ?? "";
    if (raw !== "" && raw !== "-")
      for (const kv of raw.split(",")) {
        const at = kv.indexOf("=");
        labels[kv.slice(0, at)] = kv.slice(at + 1);
      }
    out.set(cols[0], labels);
  }
  return out;
}

/** `ctr snapshots ls` as key → [parent, kind]. */
async function snapshotsLs(d: GrpcDaemon): Promise<Map<string, [string, string]>> {
  const r = await d.ctr(["snapshots", "ls"]);
  if (r.exitCode !== 0) throw new Error(`${r.command}: ${r.stderr}`);
  const out = new Map<string, [string, string]>();
  for (const line of r.stdout.split("\n").slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length === 3) out.set(cols[0]!, [cols[1]!, cols[2]!]);
    else if (cols.length === 2) out.set(cols[0]!, ["", cols[1]!]);
  }
  return out;
}

/** The labels ctr's pull/import and unpack set, and the chain-id snapshots its unpack commits. */
async function checkStored(t: Test, d: GrpcDaemon, extraManifestLabels: string[] = [], uncompressed = true) {
  const content = await contentLs(d);
  t.same(
    [...content.keys()].sort(),
    [want.manifest, want.config, ...want.layers].sort(),
    "ctr content ls: the manifest, the config and both layers",
  );
  const ml = content.get(want.manifest) ?? {};
  t.equal(ml["containerd.io/gc.ref.content.config"], want.config, "manifest → config label");
  want.layers.forEach((l, i) => {
    t.equal(ml[`containerd.io/gc.ref.content.l.${i}`], l, `manifest → layer ${i} label`);
    // Set by ctr's unpack on the layers it applied (none when another unpack made the snapshots).
    if (uncompressed)
      t.equal(
        content.get(l)?.["containerd.io/uncompressed"],
        want.diffIds[i],
        `layer ${i}: uncompressed label`,
      );
  });
  for (const k of extraManifestLabels) t.ok(Object.hasOwn(ml, k), `manifest label ${k}`);
  t.equal(
    content.get(want.config)?.["containerd.io/gc.ref.snapshot.overlayfs"],
    want.chains.at(-1),
    "config → top chain id (gc.ref.snapshot.overlayfs)",
  );
  const snaps = await snapshotsLs(d);
  t.same(
    [...snaps.entries()].sort(),
    [
      [want.chains[0], ["", "Committed"]],
      [want.chains[1], [want.chains[0], "Committed"]],
    ].sort(),
    "ctr snapshots ls: the chain ids, committed, the second on the first",
  );
}

async function checkFreed(t: Test, d: GrpcDaemon) {
  t.same([...(await contentLs(d)).keys()], [], "ctr content ls: nothing left");
  t.same([...(await snapshotsLs(d)).keys()], [], "ctr snapshots ls: nothing left");
  const tl = await d.tsctl(["images", "ls", "-q"]);
  t.equal(tl.stdout.trim(), "", "tsctl images ls: nothing");
}

t.test(
  "ctr images import, ls, content ls, snapshots ls/info/usage, run; tsctl runs it; rm frees",
  async (t) => {
    const d = await startDaemonWithGrpc(t);
    const ref = "tsrunc.test/oci:1";
    const imp = await d.ctr(["images", "import", img.ociArchive], long);
    ok(t, imp, "ctr images import (OCI archive)");
    t.match(imp.stdout, `unpacking ${ref} (${want.manifest})...done`);
    const ls = await d.ctr(["images", "ls"]);
    ok(t, ls, "ctr images ls");
    const row = ls.stdout.split("\n").find((l) => l.startsWith(`${ref} `)) ?? "";
    t.match(row, want.manifest, "listed with its manifest digest");
    t.match(row, `linux/${GOARCH[process.arch] ?? process.arch}`, "and its platform");
    t.match(row, "application/vnd.oci.image.manifest.v1+json");
    await checkStored(t, d);
    const info = await d.ctr(["snapshots", "info", want.chains[1]!]);
    ok(t, info, "ctr snapshots info");
    t.match(JSON.parse(info.stdout), { Name: want.chains[1], Parent: want.chains[0], Kind: "Committed" });
    const usage = await d.ctr(["snapshots", "usage", want.chains[0]!]);
    ok(t, usage, "ctr snapshots usage");
    t.match(usage.stdout, want.chains[0]!);

    const run = await d.ctr(["run", "--rm", ...RUNTIME, ref, "c1"], long);
    ok(t, run, "ctr run IMAGE");
    t.equal(run.stdout.trim(), expectedRun, "the image's entrypoint, cmd and env");
    const run2 = await d.ctr(
      ["run", "--rm", ...RUNTIME, ref, "c2", "sh", "-c", "id -u; ls /gone 2>&1; cat /etc/layer2"],
      long,
    );
    ok(t, run2, "ctr run IMAGE with args");
    t.match(
      run2.stdout,
      /^1000\nls: \/gone: No such file or directory\nsecond layer$/m,
      "user, whiteout, layer 2 (args replace the entrypoint, as ctr does)",
    );
    t.equal((await snapshotsLs(d)).size, 2, "ctr run --rm removed the container's snapshot");

    // ctr images tag / export (Content.Read of every blob) / mount (Snapshots.Prepare + mount on
    // the host, then Remove on unmount).
    ok(t, await d.ctr(["images", "tag", ref, "tsrunc.test/oci:tagged"]), "ctr images tag");
    const exported = join(d.root.path, "exported.tar");
    ok(t, await d.ctr(["images", "export", exported, ref], long), "ctr images export");
    const listing = await execa("tar", ["-tf", exported]);
    t.match(listing.stdout, `blobs/sha256/${want.manifest.slice(7)}`, "the export holds the manifest");
    for (const l of want.layers) t.match(listing.stdout, `blobs/sha256/${l.slice(7)}`, "and each layer");
    const mnt = join(d.root.path, "mnt");
    mkdirSync(mnt);
    ok(t, await d.ctr(["images", "mount", ref, mnt], long), "ctr images mount");
    t.equal(readFileSync(join(mnt, "etc/layer2"), "utf8"), "second layer\n", "the mounted image's files");
    t.notOk(existsSync(join(mnt, "gone")), "the whiteout hides the first layer's directory");
    ok(t, await d.ctr(["images", "unmount", "--rm", mnt], long), "ctr images unmount --rm");
    t.equal((await snapshotsLs(d)).size, 2, "the mount's snapshot is gone");
    ok(t, await d.ctr(["images", "rm", "--sync", "tsrunc.test/oci:tagged"]), "rm the tag");

    // ctr snapshots diff of the second layer's snapshot (Views of it and of its parent, then
    // Diff.Diff): a layer with the file it adds and the OCI whiteout of the directory it removes.
    const diff = await execa(
      "ctr",
      d.ctrArgs([
        "snapshots",
        "diff",
        "--media-type",
        "application/vnd.oci.image.layer.v1.tar",
        want.chains[1]!,
      ]),
      { encoding: "buffer", reject: false, stdin: "ignore", timeout: 60_000 },
    );
    t.equal(diff.exitCode, 0, `ctr snapshots diff: ${Buffer.from(diff.stderr).toString()}`);
    const entries = await execa("tar", ["-t"], { input: Buffer.from(diff.stdout) });
    t.match(
      entries.stdout.split("\n").sort(),
      [".wh.gone", "etc/", "etc/layer2"].sort(),
      "the layer's entries",
    );
    const gz = await execa("ctr", d.ctrArgs(["snapshots", "diff", "--keep", want.chains[1]!]), {
      encoding: "buffer",
      reject: false,
      stdin: "ignore",
      timeout: 60_000,
    });
    t.equal(gz.exitCode, 0, "ctr snapshots diff (gzip, kept)");
    const zipped = await execa("tar", ["-tz"], { input: Buffer.from(gz.stdout) });
    t.match(zipped.stdout, "etc/layer2");
    const kept = [...(await contentLs(d))].find(([, l]) => l["containerd.io/gc.root"] !== undefined);
    t.ok(
      kept?.[1]["containerd.io/uncompressed"]?.startsWith("sha256:"),
      "the kept diff: labelled with its DiffID",
    );
    if (kept) ok(t, await d.ctr(["content", "rm", kept[0]]), "rm the kept diff");

    // The image ctr imported is tsctl's too.
    const tl = await d.tsctl(["images", "ls", "-q"]);
    t.equal(tl.stdout.trim(), ref, "tsctl images ls");
    const tr = await d.tsctl(["run", "--rm", ref, "t1"], long);
    ok(t, tr, "tsctl run of ctr's import");
    t.equal(tr.stdout.trim(), expectedRun);

    // A docker archive too (ctr writes the manifest it converts to).
    const dimp = await d.ctr(["images", "import", img.dockerArchive], long);
    ok(t, dimp, "ctr images import (docker archive)");
    const drun = await d.ctr(["run", "--rm", ...RUNTIME, "tsrunc.test/docker:1", "c3"], long);
    ok(t, drun, "ctr run of the docker archive's image");
    t.equal(drun.stdout.trim(), expectedRun);

    const rm = await d.ctr(["images", "rm", "--sync", ref, "tsrunc.test/docker:1"], long);
    ok(t, rm, "ctr images rm --sync");
    t.equal((await d.ctr(["images", "ls", "-q"])).stdout.trim(), "", "no image left");
    await checkFreed(t, d);
    await d.finish(t);
  },
);

t.test(
  "ctr images pull --plain-http; tsctl and ctr run each other's pulls; rm (background GC) frees",
  async (t) => {
    const d = await startDaemonWithGrpc(t);
    const pull = await d.ctr(["images", "pull", "--plain-http", img.ref], long);
    ok(t, pull, "ctr images pull --plain-http");
    await checkStored(t, d, [`containerd.io/distribution.source.${img.registryHost.replace(/:\d+$/, "")}`]);
    // Labels and snapshots outlive a restart of tsruncd.
    await d.stop();
    await d.start();
    await checkStored(t, d, [`containerd.io/distribution.source.${img.registryHost.replace(/:\d+$/, "")}`]);
    const run = await d.ctr(["run", "--rm", ...RUNTIME, img.ref, "c1"], long);
    ok(t, run, "ctr run of ctr's pull");
    t.equal(run.stdout.trim(), expectedRun);
    const tr = await d.tsctl(["run", "--rm", img.ref, "t1"], long);
    ok(t, tr, "tsctl run of ctr's pull");
    t.equal(tr.stdout.trim(), expectedRun);
    // Pulled again by tsctl: nothing new (the record is replaced, blobs and snapshots reused).
    ok(
      t,
      await d.tsctl(["images", "pull", "--plain-http", "-q", img.ref], long),
      "tsctl pull of the same image",
    );
    t.equal((await snapshotsLs(d)).size, 2, "no snapshot added");
    const rm = await d.ctr(["images", "rm", img.ref]);
    ok(t, rm, "ctr images rm (GC in the background)");
    await waitFor(async () => (await contentLs(d)).size === 0 && (await snapshotsLs(d)).size === 0, {
      what: "the background GC to free content and snapshots",
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    await checkFreed(t, d);

    // The other way: tsctl (ImageTools) pulls and unpacks; ctr finds it unpacked and runs it.
    ok(t, await d.tsctl(["images", "pull", "--plain-http", "-q", img.ref], long), "tsctl images pull");
    const snaps = await snapshotsLs(d);
    t.same(
      [...snaps.keys()].sort(),
      [...want.chains].sort(),
      "tsctl's unpack: chain ids as snapshot names under overlayfs",
    );
    const cls = await d.ctr(["images", "ls", "-q"]);
    t.equal(cls.stdout.trim(), img.ref, "ctr images ls shows tsctl's pull");
    const check = await d.ctr(["images", "check"]);
    ok(t, check, "ctr images check");
    t.match(check.stdout, /complete \(3\/3\)/, "ctr finds every blob of tsctl's pull");
    const crun = await d.ctr(["run", "--rm", ...RUNTIME, img.ref, "c2"], long);
    ok(t, crun, "ctr run of tsctl's pull");
    t.equal(crun.stdout.trim(), expectedRun);
    t.same([...(await snapshotsLs(d)).keys()].sort(), [...want.chains].sort(), "ctr did not unpack again");
    ok(t, await d.ctr(["images", "rm", "--sync", img.ref], long), "ctr images rm --sync of tsctl's pull");
    await checkFreed(t, d);
    await d.finish(t);
  },
);

t.test("a GC over and over while ctr imports, pulls and runs: leases keep what ctr is making", async (t) => {
  const d = await startDaemonWithGrpc(t);
  let stop = false;
  let prunes = 0;
  const pruning = (async () => {
    while (!stop) {
      const p = await d.tsctl(["images", "prune"]);
      if (p.exitCode !== 0) throw new Error(`tsctl images prune: ${p.stderr}`);
      prunes++;
    }
  })();
  try {
    for (let i = 0; i < 2; i++) {
      ok(t, await d.ctr(["images", "import", img.ociArchive], long), `import ${i} under GC`);
      ok(t, await d.ctr(["images", "pull", "--plain-http", img.ref], long), `pull ${i} under GC`);
      const run = await d.ctr(["run", "--rm", ...RUNTIME, img.ref, `g${i}`], long);
      ok(t, run, `run ${i} under GC`);
      t.equal(run.stdout.trim(), expectedRun);
      ok(t, await d.ctr(["images", "rm", "--sync", img.ref, "tsrunc.test/oci:1"], long), `rm ${i}`);
    }
  } finally {
    stop = true;
    await pruning;
  }
  t.ok(prunes > 0, `${prunes} collections ran meanwhile`);
  await checkFreed(t, d);
  await d.finish(t);
});

t.test(
  "two ctr pulls and a tsctl pull of one image at once: a ref another writer holds is Unavailable, ctr waits for it",
  async (t) => {
    const d = await startDaemonWithGrpc(t);
    const [a, b, c] = await Promise.all([
      d.ctr(["images", "pull", "--plain-http", img.ref], long),
      d.ctr(["images", "pull", "--plain-http", img.ref], long),
      d.tsctl(["images", "pull", "--plain-http", "-q", img.ref], long),
    ]);
    ok(t, a, "first ctr pull");
    ok(t, b, "second ctr pull");
    ok(t, c, "tsctl pull");
    await checkStored(t, d, [], false);
    const run = await d.ctr(["run", "--rm", ...RUNTIME, img.ref, "c1"], long);
    ok(t, run, "ctr run after the concurrent pulls");
    t.equal(run.stdout.trim(), expectedRun);
    ok(t, await d.ctr(["images", "rm", "--sync", img.ref], long), "rm");
    await checkFreed(t, d);
    await d.finish(t);
  },
);

t.test("ctr's content and snapshot commands get containerd's errors", async (t) => {
  const d = await startDaemonWithGrpc(t);
  const unknown = `sha256:${"0".repeat(64)}`;
  const get = await d.ctr(["content", "get", unknown]);
  t.not(get.exitCode, 0, "content get of an unknown digest fails");
  t.match(get.stderr, /not found/);
  const bad = await d.ctr(["content", "get", "sha256:abc"]);
  t.not(bad.exitCode, 0);
  const info = await d.ctr(["snapshots", "info", "nope"]);
  t.not(info.exitCode, 0);
  t.match(info.stderr, /not found/);
  // ctr content ingest (Content.Write from stdin) then get, label, rm.
  const data = "ingested by ctr\n";
  const ing = await d.ctr(["content", "ingest", "my-ref"], { input: data });
  ok(t, ing, "ctr content ingest");
  const digest = `sha256:${createHash("sha256").update(data).digest("hex")}`;
  const back = await d.ctr(["content", "get", digest]);
  t.equal(back.stdout, data.trimEnd(), "ctr content get");
  ok(t, await d.ctr(["content", "label", digest, "a=b"]), "ctr content label");
  t.same((await contentLs(d)).get(digest), { a: "b" });
  ok(t, await d.ctr(["content", "rm", digest]), "ctr content rm");
  t.equal((await contentLs(d)).size, 0);
  t.equal((await d.ctr(["content", "active"])).exitCode, 0, "ctr content active");
  // ctr snapshots prepare / mounts / commit / label / tree / rm on the overlayfs snapshotter.
  const prep = await d.ctr(["snapshots", "prepare", "fz-active"]);
  ok(t, prep, "ctr snapshots prepare");
  ok(t, await d.ctr(["snapshots", "mounts", "/mnt", "fz-active"]), "ctr snapshots mounts");
  ok(t, await d.ctr(["snapshots", "commit", "fz-base", "fz-active"]), "ctr snapshots commit");
  ok(t, await d.ctr(["snapshots", "label", "fz-base", "containerd.io/gc.root=x"]), "ctr snapshots label");
  const labelled = JSON.parse((await d.ctr(["snapshots", "info", "fz-base"])).stdout);
  t.same(labelled.Labels, { "containerd.io/gc.root": "x" }, "the label is there");
  ok(t, await d.ctr(["snapshots", "prepare", "fz-child", "fz-base"]), "prepare on it");
  const tree = await d.ctr(["snapshots", "tree"]);
  ok(t, tree, "ctr snapshots tree");
  t.match(tree.stdout, /fz-base\n\s+\\_ fz-child/, "the child under its parent");
  const busy = await d.ctr(["snapshots", "rm", "fz-base"]);
  t.not(busy.exitCode, 0, "a parent with a child is not removed");
  ok(t, await d.ctr(["snapshots", "rm", "fz-child", "fz-base"]), "ctr snapshots rm");
  t.equal((await snapshotsLs(d)).size, 0);
  await d.finish(t);
});
