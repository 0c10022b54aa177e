// Images built by tools no one here wrote (umoci, GNU tar, skopeo, all from Debian), imported,
// unpacked and compared file by file with `umoci unpack` of the same image; hostile images fail
// cleanly and leave nothing behind.

import {
  createReadStream,
  createWriteStream,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { gzipSync } from "node:zlib";
import { Code } from "@tsrunc/ttrpc/status";
import { execa } from "execa";
import t, { type Test } from "tap";
import { exportArchive } from "./archive/export.js";
import { type ImageRecord, importArchive } from "./archive/import.js";
import { ContentStore, type Descriptor } from "./content-store.js";
import { sha256Digest } from "./digest.js";
import { mountAll, unmountAll } from "./snapshotter/mount.js";
import { OverlaySnapshotter, type SnapshotterBackend } from "./snapshotter/overlay.js";
import { buildRichImage } from "./testing/rich-image.js";
import { type BuildEntry, tarArchive } from "./testing/tar-builder.js";
import { describeTree, diffTrees } from "./testing/tree.js";
import { unpack } from "./unpack.js";

t.setTimeout(300_000);

const run = async (cmd: string, args: string[], cwd?: string) => {
  const r = await execa(cmd, args, { reject: false, stdin: "ignore", ...(cwd ? { cwd } : {}) });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
};

const base = await mkdtemp(join(tmpdir(), "tsrunc-real-"));
t.teardown(() => rm(base, { recursive: true, force: true }));
const layout = join(base, "oci");
const outside = join(base, "outside");
mkdirSync(outside);
writeFileSync(join(outside, "sentinel"), "keep");

await buildRichImage(base);
const ociArchive = join(base, "img-oci.tar");
const dockerArchive = join(base, "img-docker.tar");
await run("skopeo", [
  "--insecure-policy",
  "copy",
  `oci:${layout}:img`,
  `oci-archive:${ociArchive}:test/img:1`,
]);
await run("skopeo", [
  "--insecure-policy",
  "copy",
  `oci:${layout}:img`,
  `docker-archive:${dockerArchive}:test/img:1`,
]);
await run("umoci", ["unpack", "--image", `${layout}:img`, join(base, "ref")]);
const reference = describeTree(join(base, "ref/rootfs"));

async function fresh(t: Test, backend: SnapshotterBackend) {
  const dir = await mkdtemp(join(base, "state-"));
  const store = await ContentStore.open(join(dir, "content"));
  const snap = await OverlaySnapshotter.open(join(dir, "snap"), { backend });
  t.teardown(() => snap.close());
  return { dir, store, snap };
}

async function compareChain(t: Test, snap: OverlaySnapshotter, chainId: string, what: string) {
  const key = `view-${Math.random()}`;
  await snap.view(key, chainId);
  const mnt = await mkdtemp(join(base, "mnt-"));
  await mountAll(await snap.mounts(key), mnt);
  try {
    const problems = diffTrees(reference, describeTree(mnt));
    t.same(
      problems,
      [],
      `${what}: the unpacked tree matches umoci unpack file by file (${reference.size} paths)`,
    );
    const st = (p: string) => readdirSync(join(mnt, p)).sort();
    t.same(st("opaque"), ["fresh", "fresh-link"], `${what}: opaque dir hides the lower entries`);
    t.same(st("replaced"), ["new1"]);
    t.notOk(st("etc").includes("deleteme"));
  } finally {
    await unmountAll(mnt);
    await rm(mnt, { recursive: true });
    await snap.remove(key);
  }
}

t.test("the reference tree has what the layers were meant to carry", async (t) => {
  const r = reference;
  t.equal(r.get("data/fifo")?.type, "fifo");
  t.equal(r.get("dev/null")?.type, "char");
  t.equal(r.get("bin/sh")?.link, "busybox");
  t.equal(r.get("bin/busybox")?.mode, 0o4755);
  t.ok(r.get("bin/busybox")?.xattrs?.["security.capability"]);
  t.equal(r.get("data/h1")?.xattrs?.["user.test"], "0x68656c6c6f");
  t.equal(r.get("opaque/fresh")?.xattrs?.["user.layer3"], "0x00ff10");
  t.notOk(r.has("opaque/o1"));
  t.notOk(r.has("olddir"));
});

let ociImages: ImageRecord[] = [];
let ociChain = "";

t.test("oci-archive (skopeo) → import → unpack on overlay → same tree as umoci unpack", async (t) => {
  const { store, snap } = await fresh(t, "overlay");
  let t0 = performance.now();
  const res = await importArchive(createReadStream(ociArchive), { store });
  t.comment(`import ${Math.round(performance.now() - t0)} ms`);
  t.equal(res.format, "oci");
  t.same(
    res.images.map((i) => i.name),
    ["docker.io/test/img:1"],
  );
  ociImages = res.images;
  t0 = performance.now();
  const u = await unpack({ store, snapshotter: snap, target: res.images[0]!.target });
  t.comment(`unpack ${Math.round(performance.now() - t0)} ms`);
  t.equal(u.applied, 3);
  ociChain = u.chainId;
  await compareChain(t, snap, u.chainId, "overlay");
  const again = await unpack({ store, snapshotter: snap, target: res.images[0]!.target });
  t.equal(again.applied, 0, "a second unpack finds every chain");
  t.same(
    (await snap.list()).map((s) => s.kind),
    ["committed", "committed", "committed"],
    "no extract snapshot left",
  );
});

t.test(
  "docker-archive (skopeo) → import → unpack on the copy backend (flat apply) → same tree",
  async (t) => {
    const { store, snap } = await fresh(t, "copy");
    const res = await importArchive(createReadStream(dockerArchive), { store });
    t.equal(res.format, "docker");
    t.same(
      res.images.map((i) => i.name),
      ["docker.io/test/img:1"],
    );
    const u = await unpack({ store, snapshotter: snap, target: res.images[0]!.target });
    t.equal(u.chainId, ociChain, "same DiffIDs, same chain id as the OCI archive");
    await compareChain(t, snap, u.chainId, "copy");
  },
);

t.test(
  "export → OCI archive → re-import → unpack gives the same chain; skopeo reads the export",
  async (t) => {
    const { store, snap } = await fresh(t, "overlay");
    await importArchive(createReadStream(ociArchive), { store });
    const out = join(base, "exported.tar");
    await exportArchive(ociImages, createWriteStream(out), { store });
    const listing = await run("tar", ["-tf", out]);
    t.match(listing, /^oci-layout$/m);
    t.match(listing, /^index\.json$/m);
    const index = JSON.parse(await run("tar", ["-xOf", out, "index.json"]));
    t.equal(index.manifests[0].annotations["io.containerd.image.name"], "docker.io/test/img:1");
    t.equal(index.manifests[0].annotations["org.opencontainers.image.ref.name"], "1");
    const second = await fresh(t, "overlay");
    const res = await importArchive(createReadStream(out), { store: second.store });
    t.same(
      res.images,
      ociImages.map((i) => ({ name: i.name, target: i.target })),
    );
    const u = await unpack({ store: second.store, snapshotter: second.snap, target: res.images[0]!.target });
    t.equal(u.chainId, ociChain);
    // skopeo (containers/image) accepts it as an oci-archive
    const inspected = JSON.parse(
      await run("skopeo", ["--insecure-policy", "inspect", `oci-archive:${out}:1`]),
    );
    t.equal(inspected.Layers.length, 3);
    t.ok(snap);
  },
);

/** An image made in the store directly: layers as given (gzipped), config diff_ids as computed or forced. */
async function storeImage(store: ContentStore, layers: Buffer[], diffIds?: string[]): Promise<Descriptor> {
  const descs: Descriptor[] = [];
  for (const l of layers) {
    const gz = gzipSync(l);
    const d = { digest: sha256Digest(gz), size: gz.length };
    await store.writeBlob(d, gz);
    descs.push({ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", ...d });
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: diffIds ?? layers.map(sha256Digest) },
    }),
  );
  const cd = { digest: sha256Digest(config), size: config.length };
  await store.writeBlob(cd, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...cd },
      layers: descs,
    }),
  );
  const md = { digest: sha256Digest(manifest), size: manifest.length };
  await store.writeBlob(md, manifest);
  return { mediaType: "application/vnd.oci.image.manifest.v1+json", ...md };
}

const good: BuildEntry[] = [
  { name: "etc/", type: "directory" },
  { name: "etc/hostname", data: "base" },
];
const hostile: Array<[string, BuildEntry[], Code]> = [
  ["dot-dot", [{ name: "../../../../outside/x", data: "x" }], Code.InvalidArgument],
  [
    "symlink escape",
    [
      { name: "etc/evil", type: "symlink", linkname: "../../../../../../../../.." },
      { name: `etc/evil${outside}/x`, data: "x" },
    ],
    Code.InvalidArgument,
  ],
  [
    "hardlink escape",
    [{ name: "hl", type: "link", linkname: "../../../../../../etc/passwd" }],
    Code.InvalidArgument,
  ],
  ["hardlink to nothing", [{ name: "hl", type: "link", linkname: "etc/none" }], Code.InvalidArgument],
];

for (const backend of ["overlay", "copy"] as SnapshotterBackend[]) {
  t.test(`${backend}: hostile layers fail cleanly and leave nothing behind`, async (t) => {
    const { store, snap, dir } = await fresh(t, backend);
    const baseImage = await storeImage(store, [tarArchive(good)]);
    const { chainId } = await unpack({ store, snapshotter: snap, target: baseImage });
    const cases: Array<[string, Descriptor, Code, number?]> = [];
    for (const [what, entries, code] of hostile)
      cases.push([what, await storeImage(store, [tarArchive(good), tarArchive(entries)]), code]);
    const bomb: BuildEntry[] = [];
    for (let i = 0; i < 20_000; i++) bomb.push({ name: `b/${i}` });
    cases.push([
      "tar bomb over maxEntries",
      await storeImage(store, [tarArchive(good), tarArchive(bomb)]),
      Code.ResourceExhausted,
      10_000,
    ]);
    const l2 = tarArchive([{ name: "x", data: "x" }]);
    cases.push([
      "DiffID mismatch",
      await storeImage(
        store,
        [tarArchive(good), l2],
        [sha256Digest(tarArchive(good)), sha256Digest("not it")],
      ),
      Code.FailedPrecondition,
    ]);
    for (const [what, target, code, maxEntries] of cases) {
      const t0 = performance.now();
      await t.rejects(
        unpack({ store, snapshotter: snap, target, ...(maxEntries ? { maxEntries } : {}) }),
        { code },
        `${what}: ${Code[code]}`,
      );
      t.ok(performance.now() - t0 < 20_000, `${what}: refused in ${Math.round(performance.now() - t0)} ms`);
      t.same(
        (await snap.list()).map((s) => s.key),
        [chainId],
        `${what}: only the base layer's snapshot remains`,
      );
      t.same(readdirSync(join(dir, "snap/snapshots")).length, 1, `${what}: one snapshot directory`);
      t.same(readdirSync(outside), ["sentinel"], `${what}: nothing outside`);
    }
  });
}

t.test("a corrupted blob in an archive fails the import and leaves the store as it was", async (t) => {
  const { store } = await fresh(t, "copy");
  const x = join(base, "corrupt");
  mkdirSync(x);
  await run("tar", ["-xf", ociArchive, "-C", x]);
  const blobs = readdirSync(join(x, "blobs/sha256"));
  const biggest = blobs
    .map((b) => ({ b, size: readFileSync(join(x, "blobs/sha256", b)).length }))
    .sort((a, c) => c.size - a.size)[0]!.b;
  const p = join(x, "blobs/sha256", biggest);
  const bytes = readFileSync(p);
  bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
  writeFileSync(p, bytes);
  const corrupt = join(base, "corrupt.tar");
  await run("tar", ["-cf", corrupt, "-C", x, "."]);
  await t.rejects(importArchive(createReadStream(corrupt), { store }), { code: Code.FailedPrecondition });
  t.same(await store.list(), [], "blobs the failed import had added are removed");
  t.same(await store.listIngests(), []);
  // gzip-compressed archives import too
  const gz = join(base, "img.tar.gz");
  await pipeline(
    createReadStream(ociArchive),
    (await import("node:zlib")).createGzip(),
    createWriteStream(gz),
  );
  const res = await importArchive(createReadStream(gz), { store });
  t.equal(res.images.length, 1);
});
