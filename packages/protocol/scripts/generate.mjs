#!/usr/bin/env node
// Generates src/generated/<proto package>.ts from proto/**/*.proto.
//
//   node scripts/generate.mjs [--quiet] [outDir]   (default: src/generated; `npm run gen`)
//
// protobufjs parses the .proto files into its reflection tree; from that tree we emit, per proto
// package, one TypeScript module holding: an interface and a MessageType (create/encode/decode)
// per message, a TS enum per enum, and a ttrpc ServiceDescriptor per service. The emitted
// encoders/decoders are straight-line code on protobufjs's minimal Reader/Writer (see
// src/runtime.ts), so importing a module costs little more than parsing it: no reflection, no
// code generation at run time. The output depends only on the .proto files and this script.

import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const protobuf = require("protobufjs");

const pkgDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const protoDir = path.join(pkgDir, "proto");
const args = process.argv.slice(2);
const quiet = args.includes("--quiet");
const outDir = path.resolve(args.find((a) => !a.startsWith("--")) ?? path.join(pkgDir, "src", "generated"));

// ---------------------------------------------------------------------------------------------
// Load

function listProtos(dir) {
  const out = [];
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) out.push(...listProtos(p));
    else if (ent.name.endsWith(".proto")) out.push(p);
  }
  return out.sort();
}

// protobufjs substitutes its bundled copies for google/protobuf/*.proto; we want ours, so that
// the .proto files in this package are the whole truth. descriptor.proto (needed only to declare
// our custom field option) is the one file we take from protobufjs.
for (const k of Object.keys(protobuf.common)) {
  if (k.startsWith("google/protobuf/")) delete protobuf.common[k];
}
const descriptorProto = require.resolve("protobufjs/google/protobuf/descriptor.proto");

const root = new protobuf.Root();
root.resolvePath = (_origin, target) =>
  target === "google/protobuf/descriptor.proto" ? descriptorProto : path.join(protoDir, target);
const files = listProtos(protoDir);
root.loadSync(
  files.map((f) => path.relative(protoDir, f)),
  { alternateCommentMode: true },
);
root.resolveAll();

const ours = (obj) => typeof obj.filename === "string" && obj.filename.startsWith(protoDir + path.sep);
const relFile = (obj) => path.relative(protoDir, obj.filename).split(path.sep).join("/");

// ---------------------------------------------------------------------------------------------
// Collect: proto package -> its top-level messages, enums and services (from our files only)

const packages = new Map();
function pkgOf(name) {
  let p = packages.get(name);
  if (!p) {
    p = { name, types: [], services: [], files: new Set() };
    packages.set(name, p);
  }
  return p;
}

function walk(ns) {
  for (const obj of ns.nestedArray) {
    if (obj instanceof protobuf.Type || obj instanceof protobuf.Enum) {
      if (!ours(obj) || obj.parent.fullName === ".tsrunc") continue;
      const p = pkgOf(obj.parent.fullName.slice(1));
      collectType(p, obj);
    } else if (obj instanceof protobuf.Service) {
      if (!ours(obj)) continue;
      const p = pkgOf(obj.parent.fullName.slice(1));
      p.services.push(obj);
      p.files.add(relFile(obj));
    } else if (obj instanceof protobuf.Namespace) {
      walk(obj);
    }
  }
}

function collectType(p, t) {
  p.types.push(t);
  p.files.add(relFile(t));
  if (t instanceof protobuf.Type) {
    for (const n of t.nestedArray) {
      if (n instanceof protobuf.Type || n instanceof protobuf.Enum) collectType(p, n);
      else throw new Error(`unsupported nested ${n.fullName}`);
    }
  }
}
walk(root);

/** Package of a type (the namespace above its outermost enclosing message). */
function packageOfType(t) {
  let o = t;
  while (o.parent instanceof protobuf.Type) o = o.parent;
  return o.parent.fullName.slice(1);
}

/** The TS name of a type inside its own module: nested types are joined with "_". */
function localName(t) {
  const parts = [];
  for (let o = t; o instanceof protobuf.Type || o instanceof protobuf.Enum; o = o.parent)
    parts.unshift(o.name);
  return parts.join("_");
}

const aliasOf = (pkg) => pkg.replace(/\./g, "_");

// ---------------------------------------------------------------------------------------------
// Emit one package

const SCALARS = {
  // type: [TS type, wire type, reader expr, writer method, default literal, packable]
  string: ["string", 2, "r.string()", "string", '""', false],
  bool: ["boolean", 0, "r.bool()", "bool", "false", true],
  int32: ["number", 0, "r.int32()", "int32", "0", true],
  uint32: ["number", 0, "r.uint32()", "uint32", "0", true],
  sint32: ["number", 0, "r.sint32()", "sint32", "0", true],
  fixed32: ["number", 5, "r.fixed32()", "fixed32", "0", true],
  sfixed32: ["number", 5, "r.sfixed32()", "sfixed32", "0", true],
  float: ["number", 5, "r.float()", "float", "0", true],
  double: ["number", 1, "r.double()", "double", "0", true],
  int64: ["number", 0, "readInt64(r)", null, "0", true],
  uint64: ["bigint", 0, "readUint64(r)", null, "0n", true],
  bytes: ["Uint8Array", 2, "readBytes(r)", "bytes", "EMPTY_BYTES", false],
};

function emitPackage(p) {
  const used = new Set(); // runtime helpers
  const imports = new Set(); // other packages
  const L = [];
  const me = p.name;

  const ref = (t) => {
    const pkg = packageOfType(t);
    if (pkg === me) return localName(t);
    imports.add(pkg);
    return `${aliasOf(pkg)}.${localName(t)}`;
  };
  const rt = (name) => {
    used.add(name);
    return name;
  };
  const doc = (comment, indent = "") => {
    if (!comment) return;
    const lines = comment.split("\n");
    if (lines.length === 1) L.push(`${indent}/** ${lines[0]} */`);
    else {
      L.push(`${indent}/**`);
      for (const l of lines) L.push(`${indent} *${l ? ` ${l}` : ""}`);
      L.push(`${indent} */`);
    }
  };

  for (const t of p.types) {
    if (t instanceof protobuf.Enum) emitEnum(t);
    else emitMessage(t);
  }
  for (const s of p.services) emitService(s);

  function emitEnum(e) {
    L.push("");
    doc(e.comment);
    L.push(`export enum ${localName(e)} {`);
    for (const [k, v] of Object.entries(e.values)) {
      doc(e.comments[k], "  ");
      L.push(`  ${k} = ${v},`);
    }
    L.push("}");
  }

  function fieldInfo(f) {
    if (f.partOf) throw new Error(`oneof not supported: ${f.fullName}`);
    const always = f.options?.["(tsrunc.always_present)"] === true;
    if (f.map) {
      if (f.keyType !== "string") throw new Error(`map key ${f.keyType} not supported: ${f.fullName}`);
      const vt = f.resolvedType;
      if (vt instanceof protobuf.Enum) throw new Error(`enum map values not supported: ${f.fullName}`);
      return { kind: "map", f, value: vt ? { msg: ref(vt) } : { scalar: SCALARS[f.type], type: f.type } };
    }
    const rt_ = f.resolvedType;
    if (rt_ instanceof protobuf.Type) {
      const isTimestamp = rt_.fullName === ".google.protobuf.Timestamp";
      return { kind: f.repeated ? "msgs" : "msg", f, msg: ref(rt_), always, isTimestamp };
    }
    if (always) throw new Error(`always_present applies to message fields only: ${f.fullName}`);
    if (rt_ instanceof protobuf.Enum) {
      const s = ["", 0, "r.int32()", "int32", "0", true];
      return { kind: f.repeated ? "scalars" : "scalar", f, scalar: s, tsType: ref(rt_), isEnum: true };
    }
    const s = SCALARS[f.type];
    if (!s) throw new Error(`type ${f.type} not supported: ${f.fullName}`);
    return { kind: f.repeated ? "scalars" : "scalar", f, scalar: s, tsType: s[0], type: f.type };
  }

  function tag(id, wt) {
    return (id << 3) | wt;
  }

  /** Writes `expr` with the field's wire method, after the tag when `tagNum` is given. */
  function writeScalar(info, expr, tagNum) {
    const w = tagNum === undefined ? "w" : `w.uint32(${tagNum})`;
    if (info.type === "int64") return `${rt("writeInt64")}(${w}, ${expr})`;
    if (info.type === "uint64") return `${rt("writeUint64")}(${w}, ${expr})`;
    return `${w}.${info.scalar[3]}(${expr})`;
  }
  function readScalar(info) {
    const e = info.scalar[2];
    if (e.startsWith("readInt64")) rt("readInt64");
    if (e.startsWith("readUint64")) rt("readUint64");
    if (e.startsWith("readBytes")) rt("readBytes");
    return info.isEnum ? `${e} as ${info.tsType}` : e;
  }

  function emitMessage(t) {
    const name = localName(t);
    const fields = t.fieldsArray.slice().sort((a, b) => a.id - b.id);
    const infos = fields.map(fieldInfo);

    // interface
    L.push("");
    doc(t.comment);
    L.push(`export interface ${name} {`);
    for (const i of infos) {
      doc(i.f.comment, "  ");
      const n = i.f.name;
      switch (i.kind) {
        case "scalar":
          L.push(`  ${n}: ${i.tsType};`);
          break;
        case "scalars":
          L.push(`  ${n}: ${i.tsType}[];`);
          break;
        case "msg":
          L.push(i.always ? `  ${n}: ${i.msg};` : `  ${n}?: ${i.msg} | undefined;`);
          break;
        case "msgs":
          L.push(`  ${n}: ${i.msg}[];`);
          break;
        case "map":
          L.push(`  ${n}: Record<string, ${i.value.msg ?? i.value.scalar[0]}>;`);
          break;
      }
    }
    L.push("}");

    // create
    L.push("");
    L.push(`function create${name}(init?: ${rt("MessageInit")}<${name}>): ${name} {`);
    if (infos.length === 0) {
      L.push("  return {};");
    } else {
      L.push(`  const i: MessageInit<${name}> = init ?? {};`);
      L.push("  return {");
      for (const i of infos) {
        const n = i.f.name;
        switch (i.kind) {
          case "scalar":
            if (i.type === "bytes") rt("EMPTY_BYTES");
            L.push(`    ${n}: i.${n} ?? ${i.scalar[4]},`);
            break;
          case "scalars":
            L.push(`    ${n}: i.${n} ? i.${n}.slice() : [],`);
            break;
          case "msg":
            if (i.always) {
              const dflt = i.isTimestamp ? rt("GO_ZERO_TIME") : "{}";
              L.push(`    ${n}: ${i.msg}.create(i.${n} ?? ${dflt}),`);
            } else {
              L.push(`    ${n}: i.${n} == null ? undefined : ${i.msg}.create(i.${n}),`);
            }
            break;
          case "msgs":
            L.push(`    ${n}: i.${n} ? i.${n}.map((v) => ${i.msg}.create(v)) : [],`);
            break;
          case "map":
            if (i.value.msg) {
              L.push(`    ${n}: i.${n} ? ${rt("mapValues")}(i.${n}, (v) => ${i.value.msg}.create(v)) : {},`);
            } else {
              L.push(
                `    ${n}: i.${n} ? (${rt("copyMap")}(i.${n}) as Record<string, ${i.value.scalar[0]}>) : {},`,
              );
            }
            break;
        }
      }
      L.push("  };");
    }
    L.push("}");

    // encode
    L.push("");
    const mParam = infos.length === 0 ? "_m" : "m";
    const wParam = infos.length === 0 ? "_w" : "w";
    L.push(`function encode${name}(${mParam}: MessageInit<${name}>, ${wParam}: ${rt("Writer")}): void {`);
    for (const i of infos) {
      const n = i.f.name;
      const id = i.f.id;
      switch (i.kind) {
        case "scalar": {
          const wt = i.scalar[1];
          const cond = i.type === "bytes" ? `m.${n}?.length` : `m.${n}`;
          L.push(`  if (${cond}) ${writeScalar(i, `m.${n}`, tag(id, wt))};`);
          break;
        }
        case "scalars":
          if (i.scalar[5]) {
            L.push(`  if (m.${n}?.length) {`);
            L.push(`    w.uint32(${tag(id, 2)}).fork();`);
            L.push(`    for (const v of m.${n}) ${writeScalar(i, "v")};`);
            L.push("    w.ldelim();");
            L.push("  }");
          } else {
            L.push(`  if (m.${n}) for (const v of m.${n}) ${writeScalar(i, "v", tag(id, 2))};`);
          }
          break;
        case "msg":
          if (i.always) {
            const dflt = i.isTimestamp ? rt("GO_ZERO_TIME") : "{}";
            L.push(`  w.uint32(${tag(id, 2)}).fork();`);
            L.push(`  ${i.msg}.encodeTo(m.${n} ?? ${dflt}, w);`);
            L.push("  w.ldelim();");
          } else {
            L.push(`  if (m.${n} != null) {`);
            L.push(`    w.uint32(${tag(id, 2)}).fork();`);
            L.push(`    ${i.msg}.encodeTo(m.${n}, w);`);
            L.push("    w.ldelim();");
            L.push("  }");
          }
          break;
        case "msgs":
          L.push(`  if (m.${n}) {`);
          L.push(`    for (const v of m.${n}) {`);
          L.push(`      w.uint32(${tag(id, 2)}).fork();`);
          L.push(`      ${i.msg}.encodeTo(v ?? {}, w);`);
          L.push("      w.ldelim();");
          L.push("    }");
          L.push("  }");
          break;
        case "map":
          L.push(`  if (m.${n}) {`);
          L.push(`    for (const k of Object.keys(m.${n})) {`);
          L.push(`      w.uint32(${tag(id, 2)}).fork().uint32(10).string(k);`);
          if (i.value.msg) {
            L.push("      w.uint32(18).fork();");
            L.push(`      ${i.value.msg}.encodeTo(m.${n}[k] ?? {}, w);`);
            L.push("      w.ldelim();");
          } else {
            const vi = { scalar: i.value.scalar, type: i.value.type };
            L.push(
              `      ${writeScalar(vi, `m.${n}[k] ?? ${i.value.scalar[4]}`, tag(2, i.value.scalar[1]))};`,
            );
            if (i.value.type === "bytes") rt("EMPTY_BYTES");
          }
          L.push("      w.ldelim();");
          L.push("    }");
          L.push("  }");
          break;
      }
    }
    L.push("}");

    // decode
    L.push("");
    L.push(`function decode${name}(r: ${rt("Reader")}, end: number): ${name} {`);
    for (const i of infos) {
      const n = i.f.name;
      switch (i.kind) {
        case "scalar":
          if (i.type === "bytes") rt("EMPTY_BYTES");
          L.push(`  let ${n}: ${i.tsType} = ${i.scalar[4]};`);
          break;
        case "scalars":
          L.push(`  const ${n}: ${i.tsType}[] = [];`);
          break;
        case "msg":
          L.push(`  let ${n}: ${i.msg} | undefined;`);
          break;
        case "msgs":
          L.push(`  const ${n}: ${i.msg}[] = [];`);
          break;
        case "map":
          L.push(`  const ${n}: Record<string, ${i.value.msg ?? i.value.scalar[0]}> = {};`);
          break;
      }
    }
    L.push("  while (r.pos < end) {");
    L.push("    const t = r.uint32();");
    if (infos.length) {
      L.push("    switch (t) {");
      for (const i of infos) {
        const n = i.f.name;
        const id = i.f.id;
        switch (i.kind) {
          case "scalar":
            L.push(`      case ${tag(id, i.scalar[1])}:`);
            L.push(`        ${n} = ${readScalar(i)};`);
            L.push("        continue;");
            break;
          case "scalars":
            if (i.scalar[5]) {
              L.push(`      case ${tag(id, 2)}:`);
              L.push(`        ${rt("readPacked")}(r, end, ${n}, (r) => ${readScalar(i)});`);
              L.push("        continue;");
            }
            L.push(`      case ${tag(id, i.scalar[1])}:`);
            L.push(`        ${n}.push(${readScalar(i)});`);
            L.push("        continue;");
            break;
          case "msg":
          case "msgs": {
            L.push(`      case ${tag(id, 2)}: {`);
            L.push(`        const e = ${rt("subEnd")}(r, end);`);
            if (i.kind === "msg") L.push(`        ${n} = ${i.msg}.decodeFrom(r, e);`);
            else L.push(`        ${n}.push(${i.msg}.decodeFrom(r, e));`);
            L.push(`        ${rt("checkEnd")}(r, e);`);
            L.push("        continue;");
            L.push("      }");
            break;
          }
          case "map": {
            const vt = i.value.msg ?? i.value.scalar[0];
            L.push(`      case ${tag(id, 2)}: {`);
            L.push(`        const e = ${rt("subEnd")}(r, end);`);
            L.push('        let k = "";');
            if (i.value.msg) {
              L.push(`        let v: ${vt} | undefined;`);
            } else {
              L.push(`        let v: ${vt} = ${i.value.scalar[4]};`);
              if (i.value.type === "bytes") rt("EMPTY_BYTES");
            }
            L.push("        while (r.pos < e) {");
            L.push("          const tt = r.uint32();");
            L.push("          if (tt === 10) k = r.string();");
            if (i.value.msg) {
              L.push("          else if (tt === 18) {");
              L.push("            const ve = subEnd(r, e);");
              L.push(`            v = ${i.value.msg}.decodeFrom(r, ve);`);
              L.push("            checkEnd(r, ve);");
              L.push("          }");
            } else {
              const vi = { scalar: i.value.scalar, type: i.value.type };
              L.push(`          else if (tt === ${tag(2, i.value.scalar[1])}) v = ${readScalar(vi)};`);
            }
            L.push(`          else ${rt("skip")}(r, tt);`);
            L.push("        }");
            L.push("        checkEnd(r, e);");
            L.push(
              `        ${rt("setEntry")}(${n}, k, ${i.value.msg ? `v ?? ${i.value.msg}.create()` : "v"});`,
            );
            L.push("        continue;");
            L.push("      }");
            break;
          }
        }
      }
      L.push("    }");
    }
    L.push(`    ${rt("skip")}(r, t);`);
    L.push("  }");
    const parts = infos.map((i) => {
      const n = i.f.name;
      if (i.kind === "msg" && i.always) {
        return `${n}: ${n} ?? ${i.isTimestamp ? `${i.msg}.create(${rt("GO_ZERO_TIME")})` : `${i.msg}.create()`}`;
      }
      return n;
    });
    L.push(`  return { ${parts.join(", ")} };`);
    L.push("}");

    L.push("");
    L.push(
      `export const ${name}: ${rt("MessageType")}<${name}> = ${rt("messageType")}(${JSON.stringify(t.fullName.slice(1))}, create${name}, encode${name}, decode${name});`,
    );
  }

  function emitService(s) {
    const kinds = s.methodsArray.map((m) =>
      m.requestStream ? (m.responseStream ? "bidi" : "client") : m.responseStream ? "server" : "unary",
    );
    const key = (m) => m.name[0].toLowerCase() + m.name.slice(1);
    L.push("");
    doc(s.comment);
    L.push(`export type ${s.name}Methods = {`);
    s.methodsArray.forEach((m, j) => {
      doc(m.comment, "  ");
      L.push(
        // The last two parameters let stubs and handlers take messages with fields left out.
        `  readonly ${key(m)}: MethodDescriptor<${ref(m.resolvedRequestType)}, ${ref(m.resolvedResponseType)}, "${kinds[j]}", ${rt("MessageInit")}<${ref(m.resolvedRequestType)}>, ${rt("MessageInit")}<${ref(m.resolvedResponseType)}>>;`,
      );
    });
    L.push("};");
    L.push("");
    doc(`The ttrpc descriptor of service ${s.fullName.slice(1)}.`);
    L.push(`export const ${s.name}Service: ServiceDescriptor<${s.name}Methods> = {`);
    L.push(`  name: ${JSON.stringify(s.fullName.slice(1))},`);
    L.push("  methods: {");
    s.methodsArray.forEach((m, j) => {
      L.push(`    ${key(m)}: {`);
      L.push(`      name: ${JSON.stringify(m.name)},`);
      L.push(`      kind: "${kinds[j]}",`);
      L.push(`      requestType: ${ref(m.resolvedRequestType)},`);
      L.push(`      responseType: ${ref(m.resolvedResponseType)},`);
      L.push("    },");
    });
    L.push("  },");
    L.push("};");
  }

  return { lines: L, used, imports, files: p.files };
}

// ---------------------------------------------------------------------------------------------
// Write: one module per side, each proto package a TS namespace named after it
// (containerd.task.v2 -> containerd_task_v2). Few files load faster than many.

const MODULES = [
  {
    file: "shim.ts",
    about: "Everything the shim speaks: task API, events, runc options, cgroup metrics, shared types.",
    packages: [
      "google.protobuf",
      "google.rpc",
      "containerd.types",
      "containerd.v1.types",
      "containerd.task.v2",
      "containerd.events",
      "containerd.services.events.ttrpc.v1",
      "containerd.runc.v1",
      "io.containerd.cgroups.v1",
      "io.containerd.cgroups.v2",
    ],
  },
  {
    file: "daemon.ts",
    about: "The daemon's own API, shaped like containerd's services (imports shared types from shim.ts).",
    packages: [
      "containerd.services.containers.v1",
      "containerd.services.tasks.v1",
      "containerd.services.events.v1",
      "containerd.services.images.v1",
      "containerd.services.snapshots.v1",
      "containerd.services.namespaces.v1",
      "containerd.services.leases.v1",
      "containerd.services.version.v1",
      "containerd.services.introspection.v1",
      "grpc.health.v1",
      "containerd.services.content.v1",
      "containerd.services.diff.v1",
      "tsrunc.services.images.v1",
    ],
  },
];

const moduleOf = new Map();
for (const m of MODULES) for (const pkg of m.packages) moduleOf.set(pkg, m);
for (const name of packages.keys()) {
  if (!moduleOf.has(name)) throw new Error(`package ${name} is not assigned to a module in MODULES`);
}

const typeOnly = new Set(["MessageInit", "MessageType", "Reader", "Writer"]);

function emitModule(m) {
  const used = new Set();
  const foreign = new Map(); // module file -> set of namespaces imported from it
  const files = new Set();
  let hasServices = false;
  const body = [];
  for (const pkg of m.packages) {
    const p = packages.get(pkg);
    if (!p) throw new Error(`package ${pkg} has no types in proto/`);
    const out = emitPackage(p);
    for (const u of out.used) used.add(u);
    for (const f of out.files) files.add(f);
    if (p.services.length) hasServices = true;
    for (const dep of out.imports) {
      const dm = moduleOf.get(dep);
      if (dm === m) {
        if (m.packages.indexOf(dep) > m.packages.indexOf(pkg)) {
          throw new Error(`${pkg} uses ${dep}, which must come before it in MODULES`);
        }
        continue;
      }
      if (MODULES.indexOf(dm) > MODULES.indexOf(m)) throw new Error(`${m.file} may not import ${dm.file}`);
      if (!foreign.has(dm.file)) foreign.set(dm.file, new Set());
      foreign.get(dm.file).add(aliasOf(dep));
    }
    body.push("");
    body.push(`/** Proto package ${pkg}. */`);
    body.push(`export namespace ${aliasOf(pkg)} {`);
    for (const line of out.lines.slice(1)) body.push(line ? `  ${line}` : "");
    body.push("}");
  }
  const H = [];
  H.push("// Code generated by scripts/generate.mjs. DO NOT EDIT.");
  H.push(`// ${m.about}`);
  H.push("// From:");
  for (const f of [...files].sort()) H.push(`//   proto/${f}`);
  H.push("");
  if (hasServices) H.push('import type { MethodDescriptor, ServiceDescriptor } from "@tsrunc/ttrpc";');
  const names = [...used].sort((a, b) => a.localeCompare(b));
  if (names.length) {
    const spec = names.map((n) => (typeOnly.has(n) ? `type ${n}` : n)).join(", ");
    H.push(`import { ${spec} } from "../runtime.js";`);
  }
  for (const [file, nss] of [...foreign].sort()) {
    H.push(`import { ${[...nss].sort().join(", ")} } from "./${file.replace(/\.ts$/, ".js")}";`);
  }
  return `${[...H, ...body].join("\n")}\n`;
}

fs.mkdirSync(outDir, { recursive: true });
const written = new Set();
for (const m of MODULES) {
  fs.writeFileSync(path.join(outDir, m.file), emitModule(m));
  written.add(m.file);
}
for (const f of fs.readdirSync(outDir)) {
  if (f.endsWith(".ts") && !written.has(f)) fs.rmSync(path.join(outDir, f));
}
if (!quiet) {
  console.log(`generated ${[...written].join(", ")} in ${path.relative(process.cwd(), outDir) || "."}`);
}
