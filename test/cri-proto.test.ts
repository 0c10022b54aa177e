// The CRI protos the tests speak (test/proto/cri/api.proto, trimmed from kubernetes cri-api by
// test/proto/cri/trim-upstream.mjs) against the field list taken from upstream with them
// (upstream-fields.json): every message the tests use has upstream's fields — names, numbers,
// types, labels — and nothing else, so a hand edit cannot shift a field number unnoticed.
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import t from "tap";
import { CRI_PROTO } from "./helpers/cri/client.js";

const require = createRequire(import.meta.url);
const protobuf = require("protobufjs") as typeof import("protobufjs");

type FieldList = Record<string, Record<string, { id: number; type: string; rule: string }>>;
const upstream: FieldList = JSON.parse(
  fs.readFileSync(path.join(path.dirname(CRI_PROTO), "upstream-fields.json"), "utf8"),
);

function ours(): FieldList {
  const root = new protobuf.Root();
  root.loadSync(CRI_PROTO, { keepCase: true });
  root.resolveAll();
  const pkg = root.lookup("runtime.v1") as import("protobufjs").Namespace;
  const out: FieldList = {};
  const walk = (ns: import("protobufjs").NamespaceBase) => {
    for (const n of ns.nestedArray) {
      if (n instanceof protobuf.Type) {
        const name = n.fullName.replace(/^\.runtime\.v1\./, "");
        const fields: FieldList[string] = {};
        for (const f of n.fieldsArray) {
          const type = f.resolvedType ? f.resolvedType.fullName.replace(/^\.runtime\.v1\./, "") : f.type;
          const map = f as unknown as import("protobufjs").MapField;
          const oneof = f.partOf && !f.partOf.name.startsWith("_") ? `oneof ${f.partOf.name}` : "";
          fields[f.name] = {
            id: f.id,
            type: f.map ? `map<${map.keyType}, ${type}>` : type,
            rule: f.map
              ? "map"
              : oneof || (f.repeated ? "repeated" : f.options?.proto3_optional ? "optional" : ""),
          };
        }
        out[name] = fields;
      }
      if ("nestedArray" in n) walk(n as import("protobufjs").NamespaceBase);
    }
  };
  walk(pkg);
  return out;
}

t.test("every message of our CRI protos has upstream's fields, numbers and types", async (t) => {
  const mine = ours();
  t.ok(Object.keys(mine).length >= 100, `${Object.keys(mine).length} messages checked`);
  let fields = 0;
  for (const [msg, fs_] of Object.entries(mine)) {
    const up = upstream[msg];
    if (!up) {
      t.fail(`${msg} is not an upstream message`);
      continue;
    }
    t.same(Object.keys(fs_).sort(), Object.keys(up).sort(), `${msg}: the same field names`);
    for (const [name, f] of Object.entries(fs_)) {
      fields++;
      const u = up[name];
      if (u && (u.id !== f.id || u.type !== f.type || u.rule !== f.rule))
        t.fail(`${msg}.${name}: ours ${JSON.stringify(f)}, upstream ${JSON.stringify(u)}`);
    }
  }
  t.ok(fields > 300, `${fields} fields match upstream's number, type and label`);
});

t.test("the messages the tests build carry upstream's numbers (spot check from cri-api)", async (t) => {
  // A few numbers read off cri-api's api.proto (grep), independent of the generator.
  const mine = ours();
  const expect: [string, string, number][] = [
    ["PodSandboxConfig", "linux", 8],
    ["PodSandboxConfig", "log_directory", 3],
    ["NamespaceOption", "network", 1],
    ["NamespaceOption", "pid", 2],
    ["NamespaceOption", "ipc", 3],
    ["ContainerConfig", "stdin", 12],
    ["ContainerConfig", "log_path", 11],
    ["ExecSyncRequest", "timeout", 3],
    ["ExecSyncResponse", "exit_code", 3],
    ["LinuxContainerResources", "memory_limit_in_bytes", 4],
    ["RunPodSandboxRequest", "runtime_handler", 2],
    ["ContainerStatus", "exit_code", 7],
  ];
  for (const [msg, field, id] of expect) t.equal(mine[msg]?.[field]?.id, id, `${msg}.${field} = ${id}`);
});
