import { Code } from "@tsrunc/ttrpc";
import t from "tap";
import { ImageStore } from "./image-store.js";
import { openStore } from "./test-support.js";

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const target = (c = "a") => ({
  mediaType: "application/vnd.oci.image.index.v1+json",
  digest: digest(c),
  size: 123,
  annotations: { "org.opencontainers.image.ref.name": "latest" },
});

t.test("create, get, list with filters, namespaces apart", async (t) => {
  const store = openStore(t);
  const images = new ImageStore(store.database);
  const a = images.create({
    namespace: "default",
    name: "docker.io/library/busybox:latest",
    target: target(),
    labels: { k: "v", gone: "" },
  });
  t.same(a.labels, { k: "v" }, "an empty label is no label");
  images.create({ namespace: "default", name: "localhost:5000/x:1", target: target("b") });
  images.create({ namespace: "other", name: "docker.io/library/busybox:latest", target: target("c") });
  t.throws(() => images.create({ namespace: "default", name: "localhost:5000/x:1", target: target() }), {
    code: Code.AlreadyExists,
  });
  t.same(images.get("default", "docker.io/library/busybox:latest").target, target());
  t.equal(images.get("other", "docker.io/library/busybox:latest").target.digest, digest("c"));
  t.same(
    images.list("default").map((i) => i.name),
    ["docker.io/library/busybox:latest", "localhost:5000/x:1"],
  );
  t.same(
    images.list("default", ["labels.k==v"]).map((i) => i.name),
    ["docker.io/library/busybox:latest"],
  );
  t.same(
    images.list("default", [`target.digest==${digest("b")}`]).map((i) => i.name),
    ["localhost:5000/x:1"],
  );
  t.same(
    images.list("default", ["name~=^localhost"]).map((i) => i.name),
    ["localhost:5000/x:1"],
  );
  t.equal(images.all().length, 3);
  t.throws(() => images.get("default", "nope"), { code: Code.NotFound });
});

t.test("validation as containerd's", async (t) => {
  const images = new ImageStore(openStore(t).database);
  t.throws(() => images.create({ namespace: "default", name: "", target: target() }), {
    code: Code.InvalidArgument,
  });
  t.throws(() => images.create({ namespace: "default", name: "x", target: { ...target(), mediaType: "" } }), {
    code: Code.InvalidArgument,
    message: /MediaType/,
  });
  t.throws(
    () => images.create({ namespace: "default", name: "x", target: { ...target(), digest: "sha256:zz" } }),
    { code: Code.InvalidArgument },
  );
  t.throws(
    () =>
      images.create({ namespace: "default", name: "x", target: target(), labels: { k: "v".repeat(5000) } }),
    { code: Code.InvalidArgument, message: /maximum size/ },
  );
});

t.test("update with and without field paths; put; delete cascades", async (t) => {
  const store = openStore(t);
  const images = new ImageStore(store.database);
  images.create({ namespace: "default", name: "x", target: target(), labels: { a: "1", b: "2" } });
  const u1 = images.update("default", "x", { labels: { a: "9", c: "3" } }, ["labels.a", "labels.b"]);
  t.same(u1.labels, { a: "9" });
  t.equal(u1.target.digest, digest("a"), "target untouched");
  const u2 = images.update("default", "x", { target: target("d") });
  t.equal(u2.target.digest, digest("d"));
  t.same(u2.labels, { a: "9" }, "labels kept when not given");
  t.throws(() => images.update("default", "x", {}, ["name"]), { code: Code.InvalidArgument });
  const p = images.put({ namespace: "default", name: "x", target: target("e"), labels: { z: "1" } });
  t.equal(p.target.digest, digest("e"));
  t.same(p.labels, { a: "9", z: "1" });
  t.ok(p.createdAt.getTime() <= p.updatedAt.getTime());
  images.delete("default", "x");
  t.throws(() => images.delete("default", "x"), { code: Code.NotFound });
  t.equal(store.database.prepare("SELECT count(*) FROM image_labels").pluck().get(), 0);
  t.equal(store.database.prepare("SELECT count(*) FROM image_target_annotations").pluck().get(), 0);
});

t.test("durable leases: content kept until the lease is deleted or expires", async (t) => {
  const images = new ImageStore(openStore(t).database);
  images.putLease("l1", "default", new Date(Date.now() + 60_000));
  images.addLeaseContent("l1", [digest("a"), digest("b"), digest("a")]);
  images.putLease("l2", "default", new Date(Date.now() - 1));
  images.addLeaseContent("l2", [digest("c")]);
  images.addLeaseContent("gone", [digest("d")]);
  t.same([...images.liveLeaseContent()].sort(), [digest("a"), digest("b")]);
  images.deleteLease("l1");
  t.same([...images.liveLeaseContent()], []);
});
