// The collector's rules on a real content store, snapshotter and database (no daemon): roots,
// the lease floor, durable leases keeping an interrupted pull's blobs and ingests, transient keys.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256Digest } from "@tsrunc/images";
import pino from "pino";
import t, { type Test } from "tap";
import { MetadataStore } from "../store/index.js";
import { ImageSystem } from "./system.js";
import { testImageSystem } from "./test-support.js";

async function system(t: Test) {
  return (await testImageSystem(t, "tsrunc-gc-")).sys;
}

const blob = async (sys: ImageSystem, text: string) => {
  const data = Buffer.from(text);
  const digest = sha256Digest(data);
  await sys.content.writeBlob({ digest, size: data.length }, data);
  return { digest, size: data.length };
};

t.test("image records are roots: index → manifest → config and layers; the rest goes", async (t) => {
  const sys = await system(t);
  const layer = await blob(sys, "layer bytes");
  const diffId = sha256Digest("uncompressed");
  const config = await blob(sys, JSON.stringify({ rootfs: { type: "layers", diff_ids: [diffId] } }));
  const manifest = await blob(
    sys,
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layer }],
    }),
  );
  const index = await blob(
    sys,
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", ...manifest }],
    }),
  );
  const stray = await blob(sys, "nobody's");
  sys.images.create({
    namespace: "a",
    name: "x:1",
    target: { mediaType: "application/vnd.oci.image.index.v1+json", ...index, annotations: {} },
  });
  const sn = await sys.snapshotters.get("a");
  await sn.prepare("tmp", undefined);
  await sn.commit(diffId, "tmp"); // the chain id of a one-layer image is its diff id
  await sn.prepare("loose", undefined);
  await sn.commit("loose-c", "loose");
  const r = await sys.gc.collect();
  t.same([r.blobsRemoved, r.snapshotsRemoved], [1, 1]);
  t.notOk(await sys.content.has(stray.digest));
  for (const d of [index, manifest, config, layer]) t.ok(await sys.content.has(d.digest));
  t.same(
    (await sn.list()).map((i) => i.key),
    [diffId],
    "the image's chain snapshot stays",
  );
  sys.images.delete("a", "x:1");
  const r2 = await sys.gc.collect();
  t.same([r2.blobsRemoved, r2.snapshotsRemoved], [4, 1]);
});

t.test("leases: named blobs and snapshots, and whatever appeared after the oldest one began", async (t) => {
  const sys = await system(t);
  await blob(sys, "old");
  await new Promise((r) => setTimeout(r, 20)); // ctime and the lease's start apart
  const lease = sys.leases.acquire("a");
  const fresh = await blob(sys, "written during the lease");
  const sn = await sys.snapshotters.get("a");
  await sn.prepare("extract-1 x", undefined);
  const r = await sys.gc.collect();
  t.equal(r.blobsRemoved, 1, "the blob from before the lease goes");
  t.ok(await sys.content.has(fresh.digest), "one that appeared during a lease stays");
  t.same(
    (await sn.list()).map((i) => i.key),
    ["extract-1 x"],
    "an unpack's snapshot stays while its namespace has a lease",
  );
  lease.release();
  const r2 = await sys.gc.collect();
  t.same([r2.blobsRemoved, r2.snapshotsRemoved], [1, 1], "released: both go");
});

t.test(
  "a durable pull lease keeps blobs and ingests across a restart, until deleted or expired",
  async (t) => {
    const sys = await system(t);
    const a = await blob(sys, "fetched before the crash");
    const partial = { digest: sha256Digest("never finished"), size: 1000 };
    const w = await sys.content.writer(`layer-${partial.digest}`, partial);
    await w.write(Buffer.from("never"));
    await w.commit().catch(() => {}); // short: kept for a resume, writer closed
    const other = { digest: sha256Digest("someone else's"), size: 100 };
    const w2 = await sys.content.writer(`layer-${other.digest}`, other);
    await w2.write(Buffer.from("x"));
    await w2.commit().catch(() => {});
    sys.images.putLease("pull/a/1", "a", new Date(Date.now() + 60_000));
    sys.images.addLeaseContent("pull/a/1", [a.digest, partial.digest]);
    const r = await sys.gc.collect({ boot: true });
    t.same(
      [r.blobsRemoved, r.ingestsRemoved],
      [0, 1],
      "the leased blob and ingest stay; the other ingest goes",
    );
    t.same(
      (await sys.content.listIngests()).map((i) => i.expected.digest),
      [partial.digest],
    );
    sys.images.putLease("pull/a/1", "a", new Date(Date.now() - 1));
    const r2 = await sys.gc.collect();
    t.same([r2.blobsRemoved, r2.ingestsRemoved], [1, 1], "expired: collected");
  },
);

t.test("active snapshots: a container's stays; others after a minute, or at boot", async (t) => {
  const sys = await system(t);
  const sn = await sys.snapshotters.get("a");
  await sn.prepare("base", undefined);
  await sn.commit("base-c", "base");
  await sn.prepare("c1", "base-c");
  await sn.prepare("orphan", "base-c");
  sys.metadata.createContainer({
    namespace: "a",
    id: "c1",
    runtime: { name: "io.containerd.tsrunc.v2" },
    snapshotter: "overlayfs",
    snapshotKey: "c1",
  });
  t.equal((await sys.gc.collect()).snapshotsRemoved, 0, "a young orphan stays");
  t.equal((await sys.gc.collect({ boot: true })).snapshotsRemoved, 1, "at boot it goes");
  t.same(
    (await sn.list()).map((i) => i.key).sort(),
    ["base-c", "c1"],
    "the container's snapshot and its parent stay",
  );
  const other = await sys.snapshotters.get("b");
  await other.prepare("c1", undefined);
  t.equal(
    (await sys.gc.collect({ boot: true })).snapshotsRemoved,
    1,
    "a container of namespace a does not hold b's key",
  );
});

t.test("content labels go with their blob (GC, and rows of blobs gone while closed at open)", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "tsrunc-gc-meta-"));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const metadata = MetadataStore.open(join(root, "meta.db"));
  t.teardown(() => metadata.close());
  const open = () =>
    ImageSystem.open({ root, metadata, log: pino({ level: "silent" }), snapshotterBackend: "copy" });
  let sys = await open();
  const a = await blob(sys, "labelled a");
  const b = await blob(sys, "labelled b");
  sys.contentMeta.set("ns1", a.digest, { x: "1" });
  sys.contentMeta.set("ns2", a.digest, { y: "2" });
  sys.contentMeta.set("ns1", b.digest, { z: "3" });
  // An ingest a lease holds stays through a GC; an unheld one goes.
  const lease = sys.leases.acquire("ns1");
  const held = await sys.content.ingest("ns1/held", {});
  await held.write(Buffer.from("partial"));
  await held.close();
  lease.addIngests("ns1/held");
  const loose = await sys.content.ingest("ns1/loose", {});
  await loose.close();
  const r = await sys.gc.collect({ boot: true });
  t.same([r.blobsRemoved, r.ingestsRemoved], [2, 1], "both blobs and the unheld ingest go");
  t.ok(await sys.content.ingestStatus("ns1/held"), "the leased ingest stays");
  t.equal(sys.contentMeta.get("ns1", a.digest), undefined, "labels dropped with the blob");
  t.equal(sys.contentMeta.get("ns2", a.digest), undefined, "in every namespace");
  t.equal(sys.contentMeta.get("ns1", b.digest), undefined);
  lease.release();
  const r2 = await sys.gc.collect({ boot: true });
  t.same(r2.ingestsRemoved, 1, "released: the ingest goes");
  // Content labelled containerd.io/gc.root (ctr snapshots diff --keep) is a root.
  const rooted = await blob(sys, "kept by its label");
  sys.contentMeta.set("ns2", rooted.digest, { "containerd.io/gc.root": "2026-01-01T00:00:00Z" });
  t.equal((await sys.gc.collect({ boot: true })).blobsRemoved, 0, "a gc.root blob stays");
  sys.contentMeta.set("ns2", rooted.digest, {});
  t.equal((await sys.gc.collect({ boot: true })).blobsRemoved, 1, "unlabelled, it goes");
  // A row whose blob vanished while the daemon was down is swept at open.
  const c = await blob(sys, "labelled c");
  sys.contentMeta.set("ns1", c.digest, { w: "4" });
  await sys.close();
  rmSync(sys.content.blobPath(c.digest));
  sys = await open();
  t.teardown(() => sys.close());
  t.equal(sys.contentMeta.get("ns1", c.digest), undefined, "swept at open");
});
