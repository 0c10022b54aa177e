// NamespacesApi: namespaces in use by records appear on their own; created ones keep their
// labels across a restart (namespaces.json); update masks as containerd's; Delete refuses a
// namespace with records left; names obey the identifier rule.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, isCode } from "@tsrunc/ttrpc";
import t from "tap";
import { NamespacesApi } from "./namespaces.js";

const root = mkdtempSync(join(tmpdir(), "ns-api-"));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const inUse = new Map<string, string[]>([["busy", ["containers"]]]);
const records = { inUse: () => inUse.keys(), contents: (ns: string) => inUse.get(ns) ?? [] };
const ns = (name: string, labels: Record<string, string> = {}) => ({ name, labels });
const codeOf = (fn: () => unknown) => {
  try {
    fn();
    return Code.OK;
  } catch (err) {
    for (const c of [Code.InvalidArgument, Code.NotFound, Code.AlreadyExists, Code.FailedPrecondition])
      if (isCode(err, c)) return c;
    throw err;
  }
};

t.test("derived, created, labelled, persisted, deleted", async (t) => {
  const api = new NamespacesApi(root, records);
  t.same(
    api.list({ filter: "" }).namespaces.map((n) => n.name),
    ["busy"],
    "a namespace with records is listed",
  );
  t.same(api.get({ name: "busy" }).namespace, ns("busy"));
  t.equal(
    codeOf(() => api.get({ name: "nope" })),
    Code.NotFound,
  );
  t.same(api.create({ namespace: ns("a", { x: "1" }) }).namespace, ns("a", { x: "1" }));
  t.equal(
    codeOf(() => api.create({ namespace: ns("a") })),
    Code.AlreadyExists,
  );
  t.equal(
    codeOf(() => api.create({ namespace: ns("busy") })),
    Code.AlreadyExists,
  );
  t.equal(
    codeOf(() => api.create({ namespace: ns("../x") })),
    Code.InvalidArgument,
  );
  t.equal(
    codeOf(() => api.create({ namespace: ns("") })),
    Code.InvalidArgument,
  );
  t.equal(
    codeOf(() => api.create({ namespace: ns("b", { k: "v".repeat(5000) }) })),
    Code.InvalidArgument,
  );

  // ctr namespaces label: mask labels.KEY; an empty value removes the label.
  api.update({ namespace: ns("a", { y: "2" }), updateMask: { paths: ["labels.y"] } });
  t.same(api.get({ name: "a" }).namespace.labels, { x: "1", y: "2" });
  api.update({ namespace: ns("a", { x: "" }), updateMask: { paths: ["labels.x"] } });
  t.same(api.get({ name: "a" }).namespace.labels, { y: "2" });
  api.update({ namespace: ns("a", { z: "3" }), updateMask: { paths: ["labels"] } });
  t.same(api.get({ name: "a" }).namespace.labels, { z: "3" });
  t.equal(
    codeOf(() => api.update({ namespace: ns("a"), updateMask: { paths: ["name"] } })),
    Code.InvalidArgument,
  );
  t.equal(
    codeOf(() => api.update({ namespace: ns("nope"), updateMask: { paths: [] } })),
    Code.NotFound,
  );
  t.same(
    api.list({ filter: "labels.z==3" }).namespaces.map((n) => n.name),
    ["a"],
    "containerd's filters on name and labels",
  );

  const again = new NamespacesApi(root, records);
  t.same(again.get({ name: "a" }).namespace.labels, { z: "3" }, "kept across a restart");
  t.equal(
    codeOf(() => again.delete({ name: "busy" })),
    Code.FailedPrecondition,
  );
  again.delete({ name: "a" });
  t.equal(
    codeOf(() => again.get({ name: "a" })),
    Code.NotFound,
  );
  t.equal(
    codeOf(() => again.delete({ name: "a" })),
    Code.NotFound,
  );

  // Something was made in "used" (a container, a lease): it exists until deleted.
  again.touch("used");
  t.same(new NamespacesApi(root, records).get({ name: "used" }).namespace, ns("used"), "kept");
  again.delete({ name: "used" });
  t.equal(
    codeOf(() => again.get({ name: "used" })),
    Code.NotFound,
  );
});
