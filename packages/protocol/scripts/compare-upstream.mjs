#!/usr/bin/env node
// Checks proto/ against containerd's own .proto files: every message, enum and service of the
// upstream files below must exist here with the same field names, numbers, types and labels,
// the same enum values and the same rpc signatures.
//
//   node scripts/compare-upstream.mjs /path/to/containerd     (a v1.6 checkout or source tree)
//
// e.g. git clone -b release/1.6 https://github.com/containerd/containerd /tmp/containerd
// (cgroups metrics and google.rpc.Status are read from its vendor/ tree). Exits 1 on a mismatch.

import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const protobuf = require("protobufjs");

const upstreamDir = process.argv[2];
if (!upstreamDir) {
  console.error("usage: compare-upstream.mjs /path/to/containerd-v1.6");
  process.exit(2);
}
const UPSTREAM_FILES = [
  "runtime/v2/task/shim.proto",
  "api/types/mount.proto",
  "api/types/metrics.proto",
  "api/types/descriptor.proto",
  "api/types/task/task.proto",
  "api/events/task.proto",
  "api/events/container.proto",
  "api/events/image.proto",
  "api/services/ttrpc/events/v1/events.proto",
  "api/services/events/v1/events.proto",
  "api/services/containers/v1/containers.proto",
  "api/services/tasks/v1/tasks.proto",
  "api/services/images/v1/images.proto",
  "api/services/snapshots/v1/snapshots.proto",
  "api/types/platform.proto",
  "api/services/namespaces/v1/namespace.proto",
  "api/services/leases/v1/leases.proto",
  "api/services/version/v1/version.proto",
  "api/services/introspection/v1/introspection.proto",
  "api/services/content/v1/content.proto",
  "api/services/diff/v1/diff.proto",
  "runtime/v2/runc/options/oci.proto",
  "vendor/github.com/containerd/cgroups/stats/v1/metrics.proto",
  "vendor/github.com/containerd/cgroups/v2/stats/metrics.proto",
  "vendor/github.com/gogo/googleapis/google/rpc/status.proto",
];
const protoDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "proto");

function load(files, resolve) {
  const root = new protobuf.Root();
  root.resolvePath = resolve;
  root.loadSync(files, { keepCase: true });
  root.resolveAll();
  return root;
}

// Upstream: imports are "github.com/containerd/containerd/…" or vendored; gogo options are
// unresolved custom options, which protobufjs keeps as plain option values.
const prefix = "github.com/containerd/containerd/";
const upstream = load(
  UPSTREAM_FILES.map((f) => path.join(upstreamDir, f)),
  (_origin, target) =>
    path.isAbsolute(target)
      ? target
      : target.startsWith("google/rpc/")
        ? path.join(upstreamDir, "vendor/github.com/gogo/googleapis", target)
        : path.join(upstreamDir, target.startsWith(prefix) ? target.slice(prefix.length) : target),
);

function listProtos(dir) {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) =>
      e.isDirectory()
        ? listProtos(path.join(dir, e.name))
        : e.name.endsWith(".proto")
          ? [path.join(dir, e.name)]
          : [],
    );
}
const descriptorProto = require.resolve("protobufjs/google/protobuf/descriptor.proto");
const ours = load(listProtos(protoDir), (_origin, target) =>
  path.isAbsolute(target)
    ? target
    : target === "google/protobuf/descriptor.proto"
      ? descriptorProto
      : path.join(protoDir, target),
);

function collect(ns, out = new Map()) {
  for (const o of ns.nestedArray) {
    if (o instanceof protobuf.Type || o instanceof protobuf.Enum || o instanceof protobuf.Service)
      out.set(o.fullName, o);
    if (o instanceof protobuf.Namespace || o instanceof protobuf.Type) collect(o, out);
  }
  return out;
}

const typeOf = (f) => (f.resolvedType ? f.resolvedType.fullName : f.type);
const fieldSig = (f) =>
  `${f.name}=${f.id} ${f.map ? `map<${f.keyType},${typeOf(f)}>` : `${f.rule ?? ""} ${typeOf(f)}`.trim()}`;
const methodSig = (m) =>
  `${m.name}(${m.requestStream ? "stream " : ""}${m.resolvedRequestType.fullName}) -> ${m.responseStream ? "stream " : ""}${m.resolvedResponseType.fullName}`;

function signature(o) {
  if (o instanceof protobuf.Type) return o.fieldsArray.map(fieldSig).sort();
  if (o instanceof protobuf.Enum) return Object.entries(o.values).map(([k, v]) => `${k}=${v}`);
  return o.methodsArray.map(methodSig);
}

const mine = collect(ours);
let checked = 0;
let bad = 0;
for (const [name, u] of collect(upstream)) {
  if (/^\.(google\.protobuf|gogoproto|containerd\.plugin)\./.test(name)) continue;
  checked++;
  const o = mine.get(name);
  if (!o) {
    console.log(`missing here: ${name}`);
    bad++;
    continue;
  }
  const us = JSON.stringify(signature(u));
  const them = JSON.stringify(signature(o));
  if (us !== them) {
    console.log(`differs: ${name}\n  upstream: ${us}\n  ours:     ${them}`);
    bad++;
  }
}
console.log(`${checked} upstream messages, enums and services checked, ${bad} mismatches`);
process.exit(bad ? 1 : 0);
