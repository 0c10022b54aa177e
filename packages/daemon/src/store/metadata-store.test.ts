import { statSync } from "node:fs";
import { join } from "node:path";
import { Code } from "@tsrunc/ttrpc";
import Sqlite from "better-sqlite3";
import t from "tap";
import { MetadataStore } from "./metadata-store.js";
import { container, openStore, tempDir } from "./test-support.js";

const bytes = (...b: number[]) => new Uint8Array(b);

t.test("open: directory 0700, file and WAL 0600, WAL journal, foreign keys enforced", async (t) => {
  const dir = join(tempDir(t), "a", "b");
  const path = join(dir, "meta.db");
  const store = MetadataStore.open(path);
  t.teardown(() => store.close());
  store.createContainer(container("c1", { labels: { a: "1" } }));
  t.equal(statSync(dir).mode & 0o777, 0o700, "directory");
  t.equal(statSync(path).mode & 0o777, 0o600, "file");
  t.equal(statSync(`${path}-wal`).mode & 0o777, 0o600, "-wal file");

  const raw = new Sqlite(path, { readonly: true });
  t.teardown(() => raw.close());
  t.equal(raw.pragma("journal_mode", { simple: true }), "wal", "journal_mode is persistent WAL");
  t.equal(raw.prepare("SELECT count(*) FROM container_labels").pluck().get(), 1);
  store.deleteContainer("default", "c1");
  t.equal(raw.prepare("SELECT count(*) FROM container_labels").pluck().get(), 0, "labels cascade");
  t.same(store.integrityProblems(), []);
});

t.test("containers: create, get, find, list, delete and their error codes", async (t) => {
  const store = openStore(t);
  const before = Date.now();
  const rec = store.createContainer(
    container("c1", {
      labels: { a: "1", empty: "", "io.example/x": "y" },
      runtime: { name: "io.containerd.runc.v2", options: { typeUrl: "opts", value: bytes(9) } },
      extensions: { ext: { typeUrl: "e", value: bytes(4, 5) } },
      sandboxId: "sb",
    }),
  );
  t.same(rec.labels, { a: "1", "io.example/x": "y" }, "an empty label value is no label");
  t.ok(rec.createdAt.getTime() >= before && rec.updatedAt.getTime() === rec.createdAt.getTime());
  const got = store.getContainer("default", "c1");
  t.same(got, rec, "get returns what create returned");
  t.equal(got.spec?.value.constructor, Uint8Array, "bytes come back as plain Uint8Array");
  t.same(got.runtime, { name: "io.containerd.runc.v2", options: { typeUrl: "opts", value: bytes(9) } });
  t.same(got.extensions, { ext: { typeUrl: "e", value: bytes(4, 5) } });
  t.equal(store.findContainer("default", "nope"), undefined);
  t.equal(store.findContainer("other", "c1"), undefined, "namespaces are separate");

  t.throws(() => store.createContainer(container("c1")), {
    code: Code.AlreadyExists,
    message: 'container "c1": already exists',
  });
  t.throws(() => store.getContainer("default", "nope"), {
    code: Code.NotFound,
    message: 'container "nope": not found',
  });

  store.createContainer(container("c0"));
  store.createContainer(container("c1", { namespace: "other" }));
  t.same(
    store.listContainers("default").map((c) => c.id),
    ["c0", "c1"],
    "ordered by id",
  );
  t.same(
    store.listContainers("default", ["labels.a==1", "id==c0"]).map((c) => c.id),
    ["c0", "c1"],
  );
  t.same(
    store.listContainers("default", ['labels."io.example/x"~=^y$']).map((c) => c.id),
    ["c1"],
  );
  t.same(store.listContainers("none"), []);
  t.throws(() => store.listContainers("default", ["labels."]), { code: Code.InvalidArgument });
  t.same(store.namespaces(), ["default", "other"]);

  store.deleteContainer("default", "c1");
  t.equal(store.findContainer("default", "c1"), undefined);
  t.throws(() => store.deleteContainer("default", "c1"), {
    code: Code.NotFound,
    message: 'container "c1": not found',
  });
});

t.test("containers: validation is InvalidArgument", async (t) => {
  const store = openStore(t);
  const bad: [string, Parameters<typeof container>[1], RegExp][] = [
    ["../x", {}, /^container\.ID: identifier/],
    ["", {}, /^container\.ID: identifier must not be empty/],
    ["c", { namespace: "a/b" }, /^namespace: /],
    ["c", { runtime: { name: "" } }, /Runtime\.Name must be set/],
    ["c", { snapshotter: "" }, /Snapshotter must be set if container\.SnapshotKey is set/],
    ["c", { labels: { k: "v".repeat(4096) } }, /greater than maximum size \(4096 bytes\), key: k/],
    ["c", { extensions: { "": { typeUrl: "x", value: bytes() } } }, /Extension keys must not be zero-length/],
  ];
  for (const [id, extra, message] of bad)
    t.throws(() => store.createContainer(container(id, extra)), { code: Code.InvalidArgument, message });
  t.same(store.listContainers("default"), [], "nothing was written");
});

t.test("containers: update follows containerd's field-path rules", async (t) => {
  const store = openStore(t);
  const orig = store.createContainer(
    container("c", { labels: { a: "1", b: "2" }, extensions: { x: { typeUrl: "x", value: bytes(1) } } }),
  );
  await new Promise((r) => setTimeout(r, 5));

  // No field paths: the mutable fields present in the patch replace the stored ones.
  let rec = store.updateContainer("default", "c", {
    labels: { z: "26" },
    image: "img:2",
    runtime: orig.runtime,
  });
  t.same(rec.labels, { z: "26" });
  t.equal(rec.image, "img:2");
  t.same(rec.spec, orig.spec, "spec not in the patch: kept");
  t.equal(rec.createdAt.getTime(), orig.createdAt.getTime(), "createdAt kept");
  t.ok(rec.updatedAt.getTime() > orig.updatedAt.getTime(), "updatedAt moves");
  t.same(store.getContainer("default", "c"), rec, "what update returns is what is stored");
  rec = store.updateContainer("default", "c", { createdAt: new Date(0), sandboxId: "other" });
  t.equal(rec.createdAt.getTime(), orig.createdAt.getTime(), "createdAt in a patch is ignored (containerd)");
  t.equal(rec.sandboxId, "", "so is sandboxId");

  t.throws(() => store.updateContainer("default", "c", { snapshotter: "native" }), {
    code: Code.InvalidArgument,
    message: "container.Snapshotter field is immutable",
  });
  t.throws(() => store.updateContainer("default", "c", { runtime: { name: "io.other.v1" } }), {
    code: Code.InvalidArgument,
    message: "container.Runtime.Name field is immutable",
  });
  t.throws(() => store.updateContainer("default", "c", { id: "d" }), { code: Code.InvalidArgument });

  // Field paths: exactly those fields; named but absent means cleared.
  rec = store.updateContainer("default", "c", { labels: { a: "new", z: "ignored" } }, [
    "labels.a",
    "labels.b",
  ]);
  t.same(rec.labels, { a: "new", z: "26" }, "labels.a set, labels.b (absent) removed, z untouched");
  rec = store.updateContainer("default", "c", { labels: { a: "" } }, ["labels.a"]);
  t.same(rec.labels, { z: "26" }, "an empty value removes the label");
  rec = store.updateContainer("default", "c", { extensions: { y: { typeUrl: "y", value: bytes(2) } } }, [
    "extensions.y",
    "extensions.x",
  ]);
  t.same(rec.extensions, { y: { typeUrl: "y", value: bytes(2) } });
  rec = store.updateContainer("default", "c", {}, ["spec", "image", "snapshotkey"]);
  t.equal(rec.spec, undefined);
  t.equal(rec.image, "");
  t.equal(rec.snapshotKey, "");
  rec = store.updateContainer("default", "c", { snapshotKey: "k2", image: "i3" }, ["snapshotkey"]);
  t.equal(rec.snapshotKey, "k2");
  t.equal(rec.image, "", "image not in the mask: untouched");

  for (const path of ["id", "runtime", "createdat", "snapshotter", "sandbox"])
    t.throws(() => store.updateContainer("default", "c", {}, [path]), {
      code: Code.InvalidArgument,
      message: `cannot update "${path}" field on "c"`,
    });
  t.throws(() => store.updateContainer("default", "c", { labels: { k: "v".repeat(5000) } }), {
    code: Code.InvalidArgument,
  });
  t.throws(() => store.updateContainer("default", "nope", {}), {
    code: Code.NotFound,
    message: 'container "nope": not found',
  });
  t.same(store.getContainer("default", "c"), rec, "failed updates changed nothing");
});

t.test("tasks: put, find, list, update, delete; a container with a task cannot go", async (t) => {
  const store = openStore(t);
  t.throws(() => store.putTask({ namespace: "default", id: "c", phase: "creating", bundle: "/b" }), {
    code: Code.NotFound,
    message: 'container "c": not found',
  });
  store.createContainer(container("c"));
  store.createContainer(container("d"));
  const task = store.putTask({
    namespace: "default",
    id: "c",
    phase: "creating",
    bundle: "/run/tsrunc/default/c",
    shimBinary: "/usr/bin/containerd-shim-tsrunc-v2",
    stdout: "/fifo/out",
    terminal: true,
    runtimeOptions: bytes(1, 2),
    network: { interfaces: [{ name: "eth0" }] },
  });
  t.same(store.findTask("default", "c"), task);
  t.same(store.getTask("default", "c"), task);
  t.equal(task.pid, 0);
  t.equal(task.address, "");
  t.equal(store.findTask("default", "d"), undefined);
  t.throws(() => store.getTask("default", "d"), { code: Code.NotFound, message: 'task "d": not found' });

  t.throws(() => store.deleteContainer("default", "c"), {
    code: Code.FailedPrecondition,
    message: 'cannot delete container "c": it still has a task',
  });

  const exitedAt = new Date(1_700_000_000_123);
  let up = store.updateTask("default", "c", {
    phase: "stopped",
    pid: 42,
    exitStatus: 137,
    exitedAt,
    network: undefined,
  });
  t.equal(up.phase, "stopped");
  t.equal(up.exitStatus, 137);
  t.equal(up.exitedAt?.getTime(), exitedAt.getTime());
  t.notOk("network" in up, "naming an optional field with undefined clears it");
  t.same(up.runtimeOptions, bytes(1, 2), "fields not named are kept");
  t.same(store.getTask("default", "c"), up);
  up = store.updateTask("default", "c", { exitedAt: undefined });
  t.equal(up.exitedAt, undefined);

  // put replaces the whole task
  const again = store.putTask({ namespace: "default", id: "c", phase: "created", bundle: "/b2", pid: 7 });
  t.same(store.getTask("default", "c"), again);
  t.equal(again.runtimeOptions, undefined);

  store.putTask({ namespace: "default", id: "d", phase: "running", bundle: "/b3" });
  store.createContainer(container("e", { namespace: "ns2" }));
  store.putTask({ namespace: "ns2", id: "e", phase: "paused", bundle: "/b4" });
  t.same(
    store.listTasks().map((r) => `${r.namespace}/${r.id}`),
    ["default/c", "default/d", "ns2/e"],
  );
  t.same(
    store.listTasks("ns2").map((r) => r.id),
    ["e"],
  );

  const badPhase = { phase: "zombie" } as unknown as Parameters<MetadataStore["updateTask"]>[2];
  t.throws(() => store.updateTask("default", "c", badPhase), { code: Code.InvalidArgument });
  t.throws(() => store.updateTask("default", "c", { pid: -1 }), { code: Code.InvalidArgument });
  t.throws(() => store.updateTask("default", "c", { exitStatus: 2 ** 32 }), { code: Code.InvalidArgument });
  t.throws(() => store.updateTask("default", "zz", { pid: 1 }), {
    code: Code.NotFound,
    message: 'task "zz": not found',
  });
  t.throws(
    () => store.putTask({ namespace: "default", id: "c", phase: "running", bundle: "", network: 1n }),
    {
      code: Code.InvalidArgument,
    },
  );

  store.deleteTask("default", "c");
  t.equal(store.findTask("default", "c"), undefined);
  t.throws(() => store.deleteTask("default", "c"), { code: Code.NotFound });
  store.deleteContainer("default", "c");
  t.same(store.integrityProblems(), []);
});

t.test("transaction: all or nothing, nested calls are savepoints, no promises", async (t) => {
  const store = openStore(t);
  t.throws(
    () =>
      store.transaction(() => {
        store.createContainer(container("c"));
        store.putTask({ namespace: "default", id: "c", phase: "creating", bundle: "/b" });
        throw new Error("boom");
      }),
    { message: "boom" },
  );
  t.equal(store.findContainer("default", "c"), undefined, "container rolled back");
  t.same(store.listTasks(), [], "task rolled back");

  const out = store.transaction(() => {
    store.createContainer(container("a"));
    try {
      store.transaction(() => {
        store.createContainer(container("b"));
        store.createContainer(container("a")); // AlreadyExists
      });
    } catch {}
    return store.listContainers("default").map((c) => c.id);
  });
  t.same(out, ["a"], "the inner failure rolled back only the inner part");
  t.same(
    store.listContainers("default").map((c) => c.id),
    ["a"],
  );

  t.throws(() => store.transaction(async () => {}), TypeError, "an async fn is refused");
});

t.test("records survive close and reopen", async (t) => {
  const path = join(tempDir(t), "meta.db");
  let store = MetadataStore.open(path);
  const c = store.createContainer(container("c", { labels: { k: "v" } }));
  const task = store.putTask({ namespace: "default", id: "c", phase: "running", bundle: "/b", pid: 9 });
  store.close();
  store.close();
  store = MetadataStore.open(path);
  t.teardown(() => store.close());
  t.same(store.getContainer("default", "c"), c);
  t.same(store.getTask("default", "c"), task);
});
