// ContentApi and DiffApi on a real content store, snapshotter and database (no transport): the
// Write stream as containerd's client drives it, the status codes bad input gets, labels,
// namespaced ingests, leases, and Diff.Apply into a prepared snapshot.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { sha256Digest } from "@tsrunc/images";
import { makeTar } from "@tsrunc/images/distribution/test-registry";
import type { contentapi } from "@tsrunc/protocol/daemon";
import { Code, isCode } from "@tsrunc/ttrpc";
import t, { type Test } from "tap";
import type { Lease } from "../images/leases.js";
import { testImageSystem } from "../images/test-support.js";
import { ContentApi } from "./content.js";
import { DiffApi } from "./diff.js";
import type { LeasedScope } from "./leases.js";
import { SnapshotsApi, toMounts } from "./snapshots.js";

const STAT = 0;
const WRITE = 1;
const COMMIT = 2;

async function setup(t: Test) {
  const { root, sys } = await testImageSystem(t, "tsrunc-content-");
  const named = new Map<string, Lease>();
  const lookup = (ns: string, id: string) => named.get(`${ns}/${id}`);
  const lease = (ns: string, id: string) => {
    const l = sys.leases.acquire(ns);
    named.set(`${ns}/${id}`, l);
    return l;
  };
  return {
    root,
    sys,
    lease,
    content: new ContentApi(sys, lookup),
    snapshots: new SnapshotsApi(sys, lookup),
    diff: new DiffApi(sys),
  };
}

const req = (r: Partial<contentapi.WriteContentRequest>): contentapi.WriteContentRequest => ({
  action: STAT,
  ref: "",
  total: 0,
  expected: "",
  offset: 0,
  data: new Uint8Array(),
  labels: {},
  ...r,
});

/** Runs a Write stream over `reqs`; returns the answers, or the error it ended with. */
async function write(api: ContentApi, s: LeasedScope, reqs: contentapi.WriteContentRequest[]) {
  const out: contentapi.WriteContentResponse[] = [];
  async function* stream() {
    yield* reqs;
  }
  try {
    for await (const m of api.write(s, stream())) out.push(m);
    return { out };
  } catch (err) {
    return { out, err: err as Error };
  }
}

const rejects = async (t: Test, p: Promise<unknown> | (() => unknown), code: Code, what: string) => {
  try {
    await (typeof p === "function" ? p() : p);
    t.fail(`${what}: succeeded`);
  } catch (err) {
    t.ok(isCode(err, code), `${what}: ${Code[code]} (${String(err)})`);
  }
};

const collect = async <T>(it: AsyncIterable<T>) => {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
};

const ns = { namespace: "a" };

t.test("Write as ctr's client: STAT, WRITE, COMMIT with labels; Info, Read, List", async (t) => {
  const { content } = await setup(t);
  const data = Buffer.from("x".repeat(5000));
  const digest = sha256Digest(data);
  const r = await write(content, ns, [
    req({ action: STAT, ref: "layer-1", total: data.length, expected: digest }),
    req({ action: WRITE, offset: 0, data: data.subarray(0, 3000) }),
    req({
      action: COMMIT,
      offset: 3000,
      data: data.subarray(3000),
      total: data.length,
      expected: digest,
      labels: { k: "v" },
    }),
  ]);
  t.equal(r.err, undefined, String(r.err));
  t.same(
    r.out.map((m) => [m.action, m.offset, m.digest, m.total]),
    [
      [STAT, 0, "", 5000],
      [WRITE, 3000, "", 5000],
      [COMMIT, 5000, digest, 5000],
    ],
  );
  const info = (await content.info(ns, { digest })).info;
  t.same([info.digest, info.size, info.labels], [digest, 5000, { k: "v" }]);
  t.same((await content.info({ namespace: "b" }, { digest })).info.labels, {}, "labels are per namespace");
  const chunks = await collect(content.read(ns, { digest, offset: 4000, size: 0 }));
  t.same(Buffer.concat(chunks.map((c) => c.data)), data.subarray(4000));
  t.equal(chunks[0]?.offset, 4000);
  const part = await collect(content.read(ns, { digest, offset: 10, size: 5 }));
  t.same(Buffer.concat(part.map((c) => c.data)).toString(), "xxxxx");
  t.same(await collect(content.read(ns, { digest, offset: 5000, size: 0 })), [], "read at the end: nothing");
  await rejects(
    t,
    collect(content.read(ns, { digest, offset: 5001, size: 0 })),
    Code.OutOfRange,
    "read past the end",
  );
  const listed = (await collect(content.list(ns, { filters: ["labels.k==v"] }))).flatMap((b) => b.info);
  t.same(
    listed.map((i) => i.digest),
    [digest],
  );
  t.same((await collect(content.list(ns, { filters: ["labels.k==w"] }))).length, 0);
  await rejects(
    t,
    collect(content.list(ns, { filters: ["labels.k=="] })),
    Code.InvalidArgument,
    "bad filter",
  );
  t.same((await content.listStatuses(ns, { filters: [] })).statuses, [], "no ingest left");
});

t.test("Write: AlreadyExists, digest unknown until commit, offsets, mismatches, resume, Abort", async (t) => {
  const { content, sys } = await setup(t);
  const data = Buffer.from("hello content");
  const digest = sha256Digest(data);
  // Unknown digest (ctr import): committed under the digest it has.
  let r = await write(content, ns, [
    req({ action: STAT, ref: "tar-blobs/1", total: data.length }),
    req({ action: COMMIT, offset: 0, data, total: data.length }),
  ]);
  t.equal(r.out.at(-1)?.digest, digest, "digest computed");
  // Expected digest stored: AlreadyExists at once, no ingest made.
  r = await write(content, ns, [req({ ref: "again", total: data.length, expected: digest })]);
  t.ok(isCode(r.err, Code.AlreadyExists), `expected exists: ${r.err}`);
  // Same bytes, digest not given: AlreadyExists at commit (as containerd's metadata store).
  r = await write(content, ns, [req({ ref: "again2" }), req({ action: COMMIT, data })]);
  t.ok(isCode(r.err, Code.AlreadyExists), `commit of stored content: ${r.err}`);
  t.same((await sys.content.ingestStates()).length, 0, "no ingest left by either");
  // First message without a ref.
  r = await write(content, ns, [req({ action: WRITE, data })]);
  t.ok(isCode(r.err, Code.InvalidArgument), `no ref: ${r.err}`);
  r = await write(content, ns, [req({ ref: "bad", expected: "sha256:1234" })]);
  t.ok(isCode(r.err, Code.InvalidArgument), `bad digest: ${r.err}`);
  r = await write(content, ns, [req({ ref: "act", action: 7 as never })]);
  t.ok(isCode(r.err, Code.InvalidArgument), `unknown action: ${r.err}`);

  const big = Buffer.from("y".repeat(1000));
  const bigDigest = sha256Digest(big);
  // Writing elsewhere than the current offset.
  r = await write(content, ns, [
    req({ ref: "off", total: 1000, expected: bigDigest }),
    req({ action: WRITE, offset: 0, data: big.subarray(0, 100) }),
    req({ action: WRITE, offset: 500, data: big.subarray(500, 600) }),
  ]);
  t.ok(isCode(r.err, Code.OutOfRange), `wrong offset: ${r.err}`);
  // The ingest stayed: Status, ListStatuses (this namespace only), STAT of a new stream resumes.
  const st = (await content.status(ns, { ref: "off" })).status;
  t.same([st?.ref, st?.offset, st?.total, st?.expected], ["off", 100, 1000, bigDigest]);
  t.same(
    (await content.listStatuses(ns, { filters: ["ref==off"] })).statuses.map((s) => s.ref),
    ["off"],
  );
  t.same((await content.listStatuses({ namespace: "b" }, { filters: [] })).statuses, [], "other namespace");
  await rejects(t, content.status({ namespace: "b" }, { ref: "off" }), Code.NotFound, "status elsewhere");
  r = await write(content, ns, [
    req({ ref: "off", total: 1000, expected: bigDigest }),
    req({ action: COMMIT, offset: 100, data: big.subarray(100, 999), total: 1000, expected: bigDigest }),
  ]);
  t.equal(r.out[0]?.offset, 100, "STAT tells the resumed offset");
  t.ok(isCode(r.err, Code.FailedPrecondition), `short commit: ${r.err}`);
  t.equal((await content.status(ns, { ref: "off" })).status?.offset, 999, "a short commit keeps the ingest");
  // Restart from 0 with wrong bytes: digest mismatch discards.
  r = await write(content, ns, [
    req({ ref: "off", total: 1000, expected: bigDigest }),
    req({ action: COMMIT, offset: 0, data: Buffer.alloc(1000), total: 1000, expected: bigDigest }),
  ]);
  t.ok(isCode(r.err, Code.FailedPrecondition), `digest mismatch: ${r.err}`);
  await rejects(t, content.status(ns, { ref: "off" }), Code.NotFound, "a digest mismatch drops the ingest");
  // Past the expected size.
  r = await write(content, ns, [req({ ref: "long", total: 10 }), req({ action: WRITE, data: big })]);
  t.ok(isCode(r.err, Code.FailedPrecondition), `too long: ${r.err}`);
  // Abort.
  r = await write(content, ns, [req({ ref: "ab" }), req({ action: WRITE, data: big })]);
  t.equal(r.err, undefined);
  await content.abort(ns, { ref: "ab" });
  await rejects(t, content.abort(ns, { ref: "ab" }), Code.NotFound, "abort twice");
  await rejects(t, content.abort(ns, { ref: "" }), Code.InvalidArgument, "abort without ref");
  t.same(
    (await sys.content.ingestStates()).map((i) => i.ref),
    ["a/act"],
    "only the ingest of the stream that failed on an unknown action is left (kept, as containerd keeps it)",
  );
  await content.abort(ns, { ref: "act" });
});

t.test("Info, Update, Delete: codes and labels", async (t) => {
  const { content, sys } = await setup(t);
  const unknown = sha256Digest("nothing");
  await rejects(t, content.info(ns, { digest: unknown }), Code.NotFound, "info unknown");
  await rejects(t, content.info(ns, { digest: "sha256:zz" }), Code.InvalidArgument, "info bad digest");
  await rejects(t, content.info(ns, { digest: "" }), Code.InvalidArgument, "info no digest");
  await rejects(t, content.delete(ns, { digest: unknown }), Code.NotFound, "delete unknown");
  const upd = (digest: string, labels: Record<string, string>, paths: string[]) =>
    content.update(ns, {
      info: {
        digest,
        size: 0,
        labels,
        createdAt: { seconds: 0, nanos: 0 },
        updatedAt: { seconds: 0, nanos: 0 },
      },
      updateMask: { paths },
    } as contentapi.UpdateRequest);
  await rejects(t, upd(unknown, {}, []), Code.NotFound, "update unknown");
  const data = Buffer.from("labelled");
  const digest = sha256Digest(data);
  await sys.content.writeBlob({ digest, size: data.length }, data);
  t.same((await upd(digest, { a: "1", b: "2" }, [])).info.labels, { a: "1", b: "2" }, "empty mask: all");
  t.same((await upd(digest, { a: "9", c: "3" }, ["labels.a"])).info.labels, { a: "9", b: "2" }, "one key");
  t.same((await upd(digest, {}, ["labels.b"])).info.labels, { a: "9" }, "removed");
  t.same((await upd(digest, { z: "1" }, ["labels"])).info.labels, { z: "1" }, "all labels");
  await rejects(t, upd(digest, {}, ["size"]), Code.InvalidArgument, "another field");
  await rejects(t, upd(digest, { ["k".repeat(5000)]: "v" }, []), Code.InvalidArgument, "label too large");
  // A blob an image of another namespace reaches is not deleted from under it.
  sys.images.create({
    namespace: "b",
    name: "x:1",
    labels: {},
    target: { mediaType: "application/octet-stream", digest, size: data.length, annotations: {} },
  });
  await rejects(t, content.delete(ns, { digest }), Code.FailedPrecondition, "used elsewhere");
  await content.delete({ namespace: "b" }, { digest });
  t.notOk(await sys.content.has(digest), "deleted by its own namespace");
  t.equal(sys.contentMeta.get("a", digest), undefined, "labels gone with it");
});

t.test("leases: what a Write under a lease stores or finds is held until the lease goes", async (t) => {
  const { content, snapshots, sys, lease } = await setup(t);
  const scope = { namespace: "a", lease: "l1" };
  let r = await write(content, { namespace: "a", lease: "nope" }, [req({ ref: "x" })]);
  t.ok(isCode(r.err, Code.NotFound), `unknown lease: ${r.err}`);
  await rejects(
    t,
    snapshots.prepare(
      { namespace: "a", lease: "nope" },
      { snapshotter: "", key: "k", parent: "", labels: {} },
    ),
    Code.NotFound,
    "prepare under an unknown lease",
  );
  const l1 = lease("a", "l1");
  const data = Buffer.from("leased blob");
  const digest = sha256Digest(data);
  r = await write(content, scope, [req({ ref: "x" }), req({ action: COMMIT, data })]);
  t.equal(r.err, undefined);
  t.ok(l1.blobs.has(digest), "the committed blob is the lease's");
  await write(content, scope, [req({ ref: "partial" }), req({ action: WRITE, data })]);
  t.ok(l1.ingests.has("a/partial"), "the ingest is the lease's");
  const l2 = lease("a", "l2");
  r = await write(content, { namespace: "a", lease: "l2" }, [req({ ref: "y", expected: digest })]);
  t.ok(isCode(r.err, Code.AlreadyExists), "already there");
  t.ok(l2.blobs.has(digest), "found content is held by the lease too");
  await snapshots.prepare(scope, { snapshotter: "", key: "active-1", parent: "", labels: {} });
  t.ok(l1.snapshots.has("active-1"), "prepared snapshot held");
  let gc = await sys.gc.collect();
  t.equal(gc.blobsRemoved + gc.ingestsRemoved + gc.snapshotsRemoved, 0, "nothing collected under leases");
  l1.release();
  l2.release();
  gc = await sys.gc.collect({ boot: true });
  t.same([gc.blobsRemoved, gc.ingestsRemoved, gc.snapshotsRemoved], [1, 1, 1], "all collected once released");
});

t.test("Diff.Apply into a prepared snapshot; codes", async (t) => {
  const { content, snapshots, diff, sys } = await setup(t);
  const tar = makeTar([
    { name: "etc", dir: true },
    { name: "etc/hello", data: Buffer.from("hi\n") },
  ]);
  const digest = sha256Digest(tar);
  await sys.content.writeBlob({ digest, size: tar.length }, tar);
  const layer = {
    mediaType: "application/vnd.oci.image.layer.v1.tar",
    digest,
    size: tar.length,
    annotations: {},
  };
  const { mounts } = await snapshots.prepare(ns, {
    snapshotter: "",
    key: "extract-1 x",
    parent: "",
    labels: {},
  });
  await rejects(
    t,
    diff.apply(ns, { diff: layer, mounts: [], payloads: {} }),
    Code.InvalidArgument,
    "no mounts",
  );
  await rejects(
    t,
    diff.apply(ns, {
      diff: layer,
      mounts: [{ type: "bind", source: "/etc", target: "", options: ["rbind"] }],
      payloads: {},
    }),
    Code.InvalidArgument,
    "mounts of no snapshot of ours",
  );
  await rejects(
    t,
    diff.apply({ namespace: "b" }, { diff: layer, mounts, payloads: {} }),
    Code.InvalidArgument,
    "another namespace's snapshot",
  );
  await rejects(
    t,
    diff.apply(ns, { diff: { ...layer, digest: sha256Digest("none") }, mounts, payloads: {} }),
    Code.NotFound,
    "unknown blob",
  );
  await rejects(
    t,
    diff.apply(ns, { diff: { ...layer, mediaType: "application/x-unknown" }, mounts, payloads: {} }),
    Code.Unimplemented,
    "unknown media type",
  );
  const { applied } = await diff.apply(ns, { diff: layer, mounts, payloads: {} });
  t.same(
    [applied?.digest, applied?.size, applied?.mediaType],
    [digest, tar.length, "application/vnd.oci.image.layer.v1.tar"],
  );
  await snapshots.commit(ns, { snapshotter: "", name: digest, key: "extract-1 x", labels: {} });
  const sn = await sys.snapshotters.get("a");
  await sn.prepare("child", digest);
  const view = await sn.applyTarget("child");
  t.equal(
    readFileSync(join(view.parents[0] ?? view.dir, "etc/hello"), "utf8"),
    "hi\n",
    "the layer is in the snapshot",
  );
  await rejects(
    t,
    diff.diff(ns, { left: [], right: [], mediaType: "", ref: "", labels: {} }),
    Code.InvalidArgument,
    "Diff.Diff without mounts",
  );
  await rejects(
    t,
    diff.diff(ns, {
      left: [],
      right: toMounts(await sn.mounts("child")),
      mediaType: "application/x-nope",
      ref: "",
      labels: {},
    }),
    Code.Unimplemented,
    "Diff.Diff to an unknown media type",
  );
  await rejects(
    t,
    diff.diff(ns, {
      left: [],
      right: toMounts(await sn.mounts("child")),
      mediaType: "",
      ref: "",
      labels: {},
    }),
    Code.Unimplemented,
    "Diff.Diff on the copy backend (whole trees, no layer directory)",
  );
  t.same((await collect(content.list(ns, { filters: [] }))).flatMap((b) => b.info).length, 1);
});

t.test("Write: a client gone between two messages lets go of its ingest (Canceled)", async (t) => {
  const { content } = await setup(t);
  const ac = new AbortController();
  const data = Buffer.from("z".repeat(300));
  async function* hanging() {
    yield req({ ref: "gone", total: 300 });
    yield req({ action: WRITE, data: data.subarray(0, 100) });
    await new Promise(() => {}); // the client never sends again
  }
  const out: number[] = [];
  const run = (async () => {
    for await (const m of content.write({ namespace: "a", signal: ac.signal }, hanging())) {
      out.push(m.offset);
      if (out.length === 2) setTimeout(() => ac.abort(), 20);
    }
  })();
  await rejects(t, run, Code.Canceled, "the stream ends when the call is gone");
  t.same(out, [0, 100]);
  const r = await write(content, ns, [
    req({ ref: "gone", total: 300 }),
    req({ action: COMMIT, offset: 100, data: data.subarray(100), total: 300 }),
  ]);
  t.equal(r.err, undefined, "the ref is free again");
  t.same(
    r.out.map((m) => m.offset),
    [100, 300],
    "and resumes where the gone client stopped",
  );
});
