// The client against an in-process fake tsruncd: namespace metadata, error codes, spec
// packing, events streaming and cancellation, connect failures.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { events, OciSpecType, packAny, unpackAnyAs } from "@tsrunc/protocol";
import { Code, isCode, Server, TtrpcError } from "@tsrunc/ttrpc";
import t from "tap";
import { connect, containerSpec, type Envelope, NAMESPACE_METADATA_KEY, tasktypes } from "./client.js";
import { decodeEvent, envelopeJson } from "./events.js";
import { buildSpec } from "./spec.js";
import { FakeDaemon, type Teardown } from "./test-support.js";

async function errorOf(p: Promise<unknown>): Promise<TtrpcError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof TtrpcError) return err;
    throw err;
  }
  throw new Error("expected a rejection");
}

async function setup(t: Teardown, namespace?: string) {
  const daemon = await FakeDaemon.start(t);
  const client = await connect({ address: daemon.path, ...(namespace ? { namespace } : {}) });
  t.teardown(() => client.close());
  return { daemon, client };
}

t.test("every call carries the namespace as containerd-namespace metadata", async (t) => {
  const { daemon, client } = await setup(t);
  t.equal(NAMESPACE_METADATA_KEY, "containerd-namespace");
  t.equal(client.namespace, "default");
  await client.containers.list();
  const other = client.withNamespace("team-a");
  await other.containers.list();
  await other.tasks.list();
  t.same(
    daemon.calls.map((c) => [c.method, c.namespace]),
    [
      ["List", "default"],
      ["List", "team-a"],
      ["List", "team-a"],
    ],
  );
  t.throws(() => client.withNamespace("no/slash"), { code: Code.InvalidArgument });
  const direct = await connect({ address: `unix://${daemon.path}`, namespace: "k8s.io" });
  t.teardown(() => direct.close());
  await direct.tasks.list();
  t.equal(daemon.calls.at(-1)?.namespace, "k8s.io", "unix:// addresses work too");
});

t.test("containers: create packs the spec as containerd does; errors keep their codes", async (t) => {
  const { daemon, client } = await setup(t);
  const spec = buildSpec({ namespace: "default", id: "web", args: ["sleep"], rootfs: "/srv/r" });
  const created = await client.containers.create({
    id: "web",
    spec,
    runtime: { name: "io.containerd.tsrunc.v2" },
    labels: { a: "1" },
  });
  t.equal(created.id, "web");
  const sent = daemon.callsOf("Create")[0]?.request as { container: { spec: { typeUrl: string } } };
  t.equal(sent.container.spec.typeUrl, "types.containerd.io/opencontainers/runtime-spec/1/Spec");
  const got = await client.containers.get("web");
  t.same(containerSpec(got), spec);
  t.same(got.labels, { a: "1" });
  t.equal(got.runtime?.name, "io.containerd.tsrunc.v2");
  // An Any is passed through untouched.
  await client.containers.create({ id: "raw", spec: packAny(OciSpecType, spec) });
  t.same(unpackAnyAs((await client.containers.get("raw")).spec!, OciSpecType), spec);

  const dup = await errorOf(client.containers.create({ id: "web", spec }));
  t.equal(dup.code, Code.AlreadyExists);
  t.match(dup.message, /already exists/);
  t.equal((await errorOf(client.containers.get("nope"))).code, Code.NotFound);
  t.equal((await errorOf(client.tasks.get({ containerId: "nope" }))).code, Code.NotFound);
  t.equal((await errorOf(client.tasks.checkpoint({ containerId: "web" }))).code, Code.Unimplemented);

  const updated = await client.containers.update({ id: "web", labels: { b: "2" } }, ["labels"]);
  t.same(updated.labels, { b: "2" });
  t.same(daemon.request<{ updateMask?: unknown }>("Update", 0).updateMask, {
    paths: ["labels"],
  });
  t.same(
    (await client.containers.list()).map((c) => c.id),
    ["web", "raw"],
  );
  await client.containers.delete("raw");
  t.equal((await errorOf(client.containers.delete("raw"))).code, Code.NotFound);
});

t.test("tasks: create, wait before start, kill by name, delete", async (t) => {
  const { daemon, client } = await setup(t);
  await client.containers.create({
    id: "c1",
    spec: buildSpec({ namespace: "default", id: "c1", args: ["sleep"] }),
  });
  const created = await client.tasks.create({ containerId: "c1" });
  t.ok(created.pid > 0);
  const exit = client.tasks.wait({ containerId: "c1" });
  const pid = await client.tasks.start({ containerId: "c1" });
  t.equal(pid, created.pid);
  const running = await client.tasks.get({ containerId: "c1" });
  t.equal(running.status, tasktypes.Status.RUNNING);
  t.same(
    (await client.tasks.list()).map((p) => p.containerId),
    ["c1"],
  );
  t.same(
    (await client.tasks.pids({ containerId: "c1" })).map((p) => p.pid),
    [pid],
  );
  t.equal((await errorOf(client.tasks.delete({ containerId: "c1" }))).code, Code.FailedPrecondition);
  await client.tasks.kill({ containerId: "c1", signal: "SIGKILL" });
  t.equal(daemon.request<{ signal?: number }>("Kill", 0).signal, 9);
  t.equal((await exit).exitStatus, 137, "128 + SIGKILL");
  const deleted = await client.tasks.delete({ containerId: "c1" });
  t.equal(deleted.exitStatus, 137);
  t.equal(
    (await errorOf(client.tasks.kill({ containerId: "c1", signal: "SIGNOPE" }))).code,
    Code.InvalidArgument,
  );
  const metrics = await client.tasks.metrics(["id==c1"]);
  t.equal(metrics[0]?.id, "c1");
});

t.test("deadlines and aborts reach each call", async (t) => {
  const { client } = await setup(t);
  await client.containers.create({
    id: "s",
    spec: buildSpec({ namespace: "default", id: "s", args: ["sleep"] }),
  });
  await client.tasks.create({ containerId: "s" });
  await client.tasks.start({ containerId: "s" });
  t.equal(
    (await errorOf(client.tasks.wait({ containerId: "s" }, { timeoutMs: 30 }))).code,
    Code.DeadlineExceeded,
  );
  const ac = new AbortController();
  const waiting = client.tasks.wait({ containerId: "s" }, { signal: ac.signal });
  ac.abort();
  t.equal((await errorOf(waiting)).code, Code.Canceled);
  t.ok(client.connected, "the connection survives");
});

t.test("events: subscribe yields envelopes, decodes them, and stops on abort", async (t) => {
  const { daemon, client } = await setup(t);
  const ac = new AbortController();
  const got: Envelope[] = [];
  const done = (async () => {
    for await (const env of client.events.subscribe({
      filters: ['topic=="/tasks/exit"'],
      signal: ac.signal,
    })) {
      got.push(env);
      if (got.length === 2) ac.abort();
    }
  })();
  // Wait until the subscription is registered, then publish.
  while (daemon.subscribers.size === 0) await new Promise((r) => setTimeout(r, 5));
  t.same(daemon.request<{ filters: string[] }>("Subscribe", 0).filters, ['topic=="/tasks/exit"']);
  daemon.publish("default", "/tasks/exit", packAny(events.TaskExit, { containerId: "x", exitStatus: 3 }));
  daemon.publish("ns2", "/tasks/start", packAny(events.TaskStart, { containerId: "y", pid: 7 }));
  daemon.publish("default", "/tasks/exit", packAny(events.TaskExit, { containerId: "z" }));
  await done; // ended by the abort, without an error
  t.equal(got.length, 2);
  t.equal(got[0]?.topic, "/tasks/exit");
  t.match(decodeEvent(got[0]!), { containerId: "x", exitStatus: 3 });
  const json = envelopeJson(got[1]!);
  t.equal(json.namespace, "ns2");
  t.equal(json.type, "containerd.events.TaskStart");
  t.match(json.event, { containerId: "y", pid: 7 });
  t.match(json.timestamp, /^\d{4}-\d\d-\d\dT/);

  // A consumer that breaks out also ends the stream on the client. (ttrpc has no cancel frame:
  // the daemon's side of the first stream lives on until the connection closes.)
  const before = daemon.subscribers.size;
  const it = client.events.subscribe({});
  const pending = (async () => {
    for await (const _ of it) break;
  })();
  while (daemon.subscribers.size === before) await new Promise((r) => setTimeout(r, 5));
  daemon.publish("default", "/x", packAny(events.TaskStart, { containerId: "q" }));
  await pending;
  t.equal(client.ttrpc.pending, 0, "no stream left open");
  // An already aborted signal yields nothing.
  const none: Envelope[] = [];
  for await (const e of client.events.subscribe({ signal: AbortSignal.abort() })) none.push(e);
  t.same(none, []);
});

t.test("a daemon that goes away fails the subscription with Unavailable", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tsc-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "s.sock");
  const d = new FakeDaemon(path);
  (d as unknown as { register(): void }).register();
  await d.server.listen(path);
  const client = await connect({ address: path });
  const it = client.events.subscribe()[Symbol.asyncIterator]();
  const next = it.next();
  next.catch(() => {}); // looked at below, after the close
  while (d.subscribers.size === 0) await new Promise((r) => setTimeout(r, 5));
  await d.server.close();
  const err = await errorOf(next);
  t.ok(isCode(err, Code.Unavailable) || isCode(err, Code.Canceled), Code[err.code]);
  await client.close();
});

t.test("connect failures name the socket and keep a code", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tsc-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const missing = join(dir, "none.sock");
  const err = await errorOf(connect({ address: missing }));
  t.equal(err.code, Code.Unavailable);
  t.equal(err.message, `cannot reach tsruncd at ${missing}: is it running?`);
  t.ok(err.cause, "the socket error is kept as cause");
  const bad = await errorOf(connect({ address: join(dir, "x".repeat(200)) }));
  t.equal(bad.code, Code.InvalidArgument);
  t.equal((await errorOf(connect({ address: missing, namespace: "../x" }))).code, Code.InvalidArgument);
});

t.test("version: Unimplemented until the daemon has a Version service; decoded when it has", async (t) => {
  const { client } = await setup(t);
  t.equal((await errorOf(client.version())).code, Code.Unimplemented);

  const dir = mkdtempSync(join(tmpdir(), "tsc-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const server = new Server();
  const bytes = { encode: (b: Uint8Array) => b, decode: (b: Uint8Array) => b };
  server.register(
    {
      name: "containerd.services.version.v1.Version",
      methods: { version: { name: "Version", kind: "unary", requestType: bytes, responseType: bytes } },
    },
    // {1: "1.2.3", 2: "abc"}
    { version: () => Uint8Array.from([10, 5, ...Buffer.from("1.2.3"), 18, 3, ...Buffer.from("abc")]) },
  );
  await server.listen(join(dir, "v.sock"));
  t.teardown(() => server.close());
  const c = await connect({ address: join(dir, "v.sock") });
  t.teardown(() => c.close());
  t.same(await c.version(), { version: "1.2.3", revision: "abc" });
});
