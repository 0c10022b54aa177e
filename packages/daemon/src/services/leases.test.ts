// LeasesApi on the GC's LeaseManager: a client lease is a live GC lease until deleted or
// expired; resources it is given are held (blobs, snapshot keys); ids are any non-empty string
// (ctr's random ones break the identifier rule); leases are per namespace.

import { Code, isCode } from "@tsrunc/ttrpc";
import t from "tap";
import { LeaseManager, type LeaseManager as LM } from "../images/leases.js";
import { LeasesApi, leaseIdOf } from "./leases.js";

const digest = `sha256:${"a".repeat(64)}`;
function setup(): { api: LeasesApi; leases: LM; collected: () => number } {
  const leases = new LeaseManager();
  let n = 0;
  const api = new LeasesApi({
    leases,
    collect: async () => {
      n++;
    },
  });
  return { api, leases, collected: () => n };
}
const s = { namespace: "ns1" };

t.test("create, hold, list, delete", async (t) => {
  const { api, leases, collected } = setup();
  const l = api.create(s, { id: "838291970-aKD-", labels: { a: "b" } }).lease;
  t.equal(l?.id, "838291970-aKD-", "ctr's random id shape is accepted");
  t.equal(leases.size, 1, "a live GC lease");
  const auto = api.create(s, { id: "", labels: {} }).lease;
  t.ok(auto?.id, "an id is made when none is given");
  await t.rejects(
    Promise.resolve().then(() => api.create(s, { id: "838291970-aKD-", labels: {} })),
    {
      code: Code.AlreadyExists,
    },
  );
  t.same(api.list({ namespace: "ns2" }, { filters: [] }).leases, [], "leases are per namespace");
  t.same(
    api.list(s, { filters: ["labels.a==b"] }).leases.map((x) => x.id),
    ["838291970-aKD-"],
  );
  api.addResource(s, { id: "838291970-aKD-", resource: { type: "content", id: digest } });
  api.addResource(s, { id: "838291970-aKD-", resource: { type: "snapshots/overlayfs", id: "k1" } });
  t.ok(leases.holdsBlob(digest), "the blob is held");
  t.ok(leases.holdsSnapshot("ns1", "k1"), "the snapshot is held");
  t.same(api.listResources(s, { id: "838291970-aKD-" }).resources.length, 2);
  t.throws(() => api.addResource(s, { id: "838291970-aKD-", resource: { type: "bogus", id: "x" } }));
  t.throws(() => api.addResource(s, { id: "838291970-aKD-", resource: { type: "content", id: "../x" } }));
  api.deleteResource(s, { id: "838291970-aKD-", resource: { type: "content", id: digest } });
  t.notOk(leases.holdsBlob(digest), "let go");
  t.equal(api.lookup("ns1", "838291970-aKD-")?.released, false, "lookup finds the GC lease");
  await api.delete(s, { id: "838291970-aKD-", sync: true });
  t.equal(collected(), 1, "Delete runs the GC");
  t.equal(leases.size, 1, "only the auto one is left");
  t.equal(api.lookup("ns1", "838291970-aKD-"), undefined);
  await t.rejects(api.delete(s, { id: "838291970-aKD-", sync: false }), { code: Code.NotFound });
  api.close();
  t.equal(leases.size, 0, "close releases every lease");
});

t.test("gc.expire: a lease past its time is dropped; a bad time is InvalidArgument", async (t) => {
  const { api, leases } = setup();
  api.create(s, {
    id: "soon",
    labels: { "containerd.io/gc.expire": new Date(Date.now() + 100).toISOString() },
  });
  t.equal(leases.size, 1);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(leases.size, 0, "expired");
  t.same(api.list(s, { filters: [] }).leases, []);
  let err: unknown;
  try {
    api.create(s, { id: "bad", labels: { "containerd.io/gc.expire": "tomorrow" } });
  } catch (e) {
    err = e;
  }
  t.ok(isCode(err, Code.InvalidArgument));
  t.equal(leases.size, 0, "nothing held after the refusal");
});

t.test("the containerd-lease header", async (t) => {
  t.equal(leaseIdOf({ "containerd-lease": ["x-1"] }), "x-1");
  t.equal(leaseIdOf({}), undefined);
  t.throws(() => leaseIdOf({ "containerd-lease": ["a\0b"] }));
});
