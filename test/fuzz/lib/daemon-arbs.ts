// Request bodies for message-level fuzzing of tsruncd: every Containers, Tasks and Events method
// gets structured hostile requests (ids like `../x`, 10,000 characters, NUL bytes; namespaces of
// every kind in the request metadata; labels by the thousand and at and over containerd's 4 KiB
// limit; filters that do not parse, or whose regexps backtrack; specs, options and events in Any
// that are nested, huge or of the wrong type), then maybe mutated at the byte level, re-encoded
// with wrong wire types, replaced by protobuf soup or random bytes.
//
// A safety net runs last (sanitize): the daemon runs as root and starts whatever shim a runtime
// name or a Tasks.Create runtime_path names (an absolute path, or containerd-shim-<name>-<v> on
// its PATH, where Debian's Go shim is). So every runtime is rewritten to one of a few harmless
// ones (the hostile `fail` shim, names that resolve to nothing): no fuzzed spec ever reaches a
// real shim and runc. The sentinel container (our real shim) only gets what cannot stop, pause
// or remove it: reads, execs (of a few fixed specs, stdio empty), signals to execs.

import * as path from "node:path";
import type { containersapi } from "@tsrunc/protocol/daemon";
import { OciSpecType } from "@tsrunc/protocol/shim";
import type { AnyMethod } from "@tsrunc/ttrpc";
import fc from "fast-check";
import { HOSTILE_DIR, SENTINEL } from "./daemon-live.js";
import { daemonMethods } from "./daemon-profile.js";

/** Where a request's namespace comes from: the test's own, none ("default"), or raw values. */
export type NsSpec = { k: "test" } | { k: "none" } | { k: "raw"; values: string[] };

export interface DaemonInput {
  service: string;
  method: string;
  payload: Uint8Array;
  ns: NsSpec;
  /** Server streams: how long to read before abandoning the stream. */
  streamMs: number;
  how: string;
}

/** Valid namespaces other than the test's that inputs may use (cleaned up afterwards). */
export const EXTRA_NAMESPACES = ["default", "fzns"];
/** Container ids the campaign may create (besides the sentinel's, which it may only read). */
export const FUZZ_IDS = ["f1", "f2", "f3", "f4"];
export const FAIL_SHIM = path.join(HOSTILE_DIR, "fail");
/** Runtimes allowed through: a shim that fails at once, and names that resolve to nothing. */
export const SAFE_RUNTIMES = [
  FAIL_SHIM,
  "io.containerd.nope.v1",
  "",
  "nope",
  "/nonexistent/shim",
  "io.containerd..v2",
  "../x",
];

const C = "containerd.services.containers.v1.Containers";
const T = "containerd.services.tasks.v1.Tasks";

export const hostileIds = [
  "../x",
  "..",
  "",
  "a/b",
  "/abs",
  "x".repeat(77),
  "x".repeat(10000),
  "a\0b",
  "é",
  "🙂",
  "a\u202eb",
  "-a",
  "a..b",
  "A_b.c-d",
  "nope",
];

const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const SPEC = {
  typeUrl: OciSpecType.typeUrl,
  value: json({ ociVersion: "1.0.2", process: { args: ["/bin/true"] } }),
};
const PROC_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process";

/** A long run of a's and one b: what a backtracking regexp chokes on. */
const AAA = `${"a".repeat(3000)}!`;
/** Filters that do not parse, that match oddly, and whose regexps backtrack exponentially. */
export const hostileFilters = [
  "",
  ",",
  "labels",
  'labels."x"==',
  "labels.x~=(",
  "id~=[",
  "image~=^(a+)+$",
  "labels.x~=^(a+)+$",
  "labels.x~=(a|a)*b",
  "labels.x~=(?i)^(a|aa)+$",
  "labels.x~=(.*a){20}",
  "labels.x~=/(a*)*b/",
  "topic~=^(/+a+)+$",
  "namespace~=(x+x+)+y",
  'labels."\\xff"==a',
  `id==${"x".repeat(5000)}`,
  "id==a,".repeat(2000),
  "runtime.name==io.containerd.nope.v1",
  'labels."__proto__"==x',
  "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p",
  "\u0000",
];

export const labelsArb: fc.Arbitrary<Record<string, string>> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({}) },
  {
    weight: 3,
    arbitrary: fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 }), { maxKeys: 4 }),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom<Record<string, string>>(
      { x: AAA },
      { x: "a".repeat(4095) },
      { [`k${"k".repeat(4000)}`]: "v".repeat(95) },
      { x: "a".repeat(5000) },
      { "": "empty key" },
      { __proto__: "p", constructor: "c", toString: "t" } as Record<string, string>,
      { "a\0b": "nul", "é🙂": "unicode" },
      Object.fromEntries(Array.from({ length: 10000 }, (_, i) => [`l${i}`, "v"])),
      Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`big${i}`, "v".repeat(4000)])),
    ),
  },
);

function anyArb(kind: "spec" | "options" | "event" | "process" | "resources") {
  const good =
    kind === "spec"
      ? fc.constant(SPEC)
      : kind === "process"
        ? fc.constantFrom(
            { typeUrl: PROC_URL, value: json({ args: ["/bin/true"], cwd: "/", user: { uid: 0, gid: 0 } }) },
            {
              typeUrl: PROC_URL,
              value: json({ args: ["/bin/sleep", "2"], cwd: "/", user: { uid: 0, gid: 0 } }),
            },
            { typeUrl: PROC_URL, value: json({ args: [], cwd: "/" }) },
            { typeUrl: PROC_URL, value: json(null) },
          )
        : fc.constantFrom({ typeUrl: "types.containerd.io/x", value: new Uint8Array([8, 1]) });
  return fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    { weight: 4, arbitrary: good },
    {
      weight: 2,
      arbitrary: fc.record({
        typeUrl: fc.oneof(
          fc.constantFrom(OciSpecType.typeUrl, PROC_URL, "", "type.googleapis.com/", "x".repeat(5000)),
          fc.string({ maxLength: 40 }),
        ),
        value: fc.oneof(
          fc.uint8Array({ maxLength: 64 }),
          fc.string({ maxLength: 64 }).map((s) => Buffer.from(s)),
        ),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(...HUGE_ANYS),
    },
  );
}

/** `depth` Anys, each the value of the one outside it (built from the inside out, once). */
function nestedAny(depth: number): Uint8Array {
  const url = Buffer.from("type.googleapis.com/google.protobuf.Any");
  const heads: Buffer[] = [];
  let len = 0;
  for (let i = 0; i < depth; i++) {
    const head = Buffer.from([10, url.length, ...url, 18, ...varint(len)]);
    heads.push(head);
    len += head.length;
  }
  return Buffer.concat(heads.reverse());
}

/** Anys too big or too deep for comfort, made once. */
const HUGE_ANYS = [
  { typeUrl: OciSpecType.typeUrl, value: Buffer.from("[".repeat(200000)) },
  { typeUrl: OciSpecType.typeUrl, value: Buffer.alloc(1 << 20, 0x20) },
  { typeUrl: "type.googleapis.com/google.protobuf.Any", value: nestedAny(2000) },
];

function fields() {
  const id = fc.oneof(
    { weight: 10, arbitrary: fc.constantFrom(...FUZZ_IDS) },
    { weight: 3, arbitrary: fc.constant(SENTINEL) },
    { weight: 3, arbitrary: fc.constantFrom(...hostileIds) },
    { weight: 1, arbitrary: fc.string({ maxLength: 20, unit: "binary" }) },
  );
  const execId = fc.oneof(
    { weight: 4, arbitrary: fc.constant("") },
    { weight: 4, arbitrary: fc.constantFrom("e1", "e2") },
    { weight: 2, arbitrary: fc.constantFrom(...hostileIds) },
  );
  const filters = fc.array(
    fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(...hostileFilters) },
      { weight: 1, arbitrary: fc.string() },
    ),
    { maxLength: 3 },
  );
  const runtime = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...SAFE_RUNTIMES) },
    { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
  );
  const topic = fc.oneof(
    fc.constantFrom(
      "/tasks/exit",
      "/fuzz/x",
      "/",
      "//",
      "/a//b",
      "x",
      "",
      `/${"a".repeat(300)}`,
      "/a b",
      "/é",
    ),
    fc.string({ maxLength: 30 }),
  );
  const u32 = fc.oneof(fc.nat(70), fc.constantFrom(0, 9, 15, 0x7fffffff, 0xffffffff));
  const container = fc.record(
    {
      id,
      labels: labelsArb,
      image: fc.oneof(fc.constant(""), fc.string({ maxLength: 40 }), fc.constant("i".repeat(100000))),
      runtime: fc.record({ name: runtime, options: anyArb("options") }, { requiredKeys: ["name"] }),
      spec: fc.oneof({ weight: 3, arbitrary: fc.constant(SPEC) }, { weight: 1, arbitrary: anyArb("spec") }),
      snapshotter: fc.string({ maxLength: 10 }),
      snapshotKey: fc.string({ maxLength: 10 }),
      extensions: fc.oneof(
        fc.constant({}),
        fc.dictionary(
          fc.string({ maxLength: 8 }),
          anyArb("event").map((a) => a ?? SPEC),
          { maxKeys: 3 },
        ),
      ),
    },
    { requiredKeys: ["id"] },
  );
  return { id, execId, filters, runtime, topic, u32, container };
}

function requestArb(service: string, method: string): fc.Arbitrary<Record<string, unknown>> {
  const f = fields();
  const ref = fc.record({ containerId: f.id, execId: f.execId });
  if (service === C) {
    switch (method) {
      case "Create":
        return fc.record({ container: f.container });
      case "Update":
        return fc.record({
          container: f.container,
          updateMask: fc.option(
            fc.record({
              paths: fc.array(
                fc.oneof(
                  fc.constantFrom("labels", "labels.x", "labels.__proto__", "image", "spec", "runtime", "id"),
                  fc.constantFrom("extensions", "extensions.x", "snapshotkey", "", "labels."),
                  fc.string({ maxLength: 12 }),
                ),
                { maxLength: 4 },
              ),
            }),
            { nil: undefined },
          ),
        });
      case "List":
      case "ListStream":
        return fc.record({ filters: f.filters });
      default:
        return fc.record({ id: f.id });
    }
  }
  if (service === T) {
    switch (method) {
      case "Create":
        return fc.record(
          {
            containerId: f.id,
            rootfs: fc.array(
              fc.record({
                type: fc.constantFrom("bind", "tmpfs", ""),
                source: fc.string(),
                options: fc.array(fc.string()),
              }),
              { maxLength: 2 },
            ),
            stdin: fc.string({ maxLength: 20 }),
            stdout: fc.string({ maxLength: 20 }),
            stderr: fc.string({ maxLength: 20 }),
            terminal: fc.boolean(),
            checkpoint: fc.oneof(
              { weight: 9, arbitrary: fc.constant(undefined) },
              {
                weight: 1,
                arbitrary: fc.record({ mediaType: fc.string(), digest: fc.string(), size: fc.nat() }),
              },
            ),
            options: anyArb("options"),
            runtimePath: f.runtime,
          },
          { requiredKeys: ["containerId"] },
        );
      case "Kill":
        return fc.record({ containerId: f.id, execId: f.execId, signal: f.u32, all: fc.boolean() });
      case "Exec":
        return fc.record({
          containerId: f.id,
          execId: f.execId,
          terminal: fc.boolean(),
          spec: anyArb("process"),
        });
      case "ResizePty":
        return fc.record({ containerId: f.id, execId: f.execId, width: f.u32, height: f.u32 });
      case "CloseIO":
        return fc.record({ containerId: f.id, execId: f.execId, stdin: fc.boolean() });
      case "List":
        return fc.record({ filter: fc.constantFrom(...hostileFilters) });
      case "Metrics":
        return fc.record({
          filters: fc.array(
            fc.oneof(
              f.filters.map((x) => x[0] ?? ""),
              f.id.map((i) => `id==${i}`),
            ),
          ),
        });
      case "Update":
        return fc.record({
          containerId: f.id,
          resources: anyArb("resources"),
          annotations: fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), {
            maxKeys: 3,
          }),
        });
      case "Checkpoint":
        return fc.record({ containerId: f.id, parentCheckpoint: fc.string(), options: anyArb("options") });
      default:
        return ref;
    }
  }
  // Events, both services.
  switch (method) {
    case "Publish":
      return fc.record({ topic: f.topic, event: anyArb("event") });
    case "Forward":
      return fc.record({
        envelope: fc.option(
          fc.record({
            timestamp: fc.option(
              fc.record({ seconds: fc.integer({ min: -1e12, max: 1e12 }), nanos: fc.integer() }),
              {
                nil: undefined,
              },
            ),
            namespace: fc.oneof(fc.constantFrom("default", "fzns", "../x", ""), fc.string({ maxLength: 20 })),
            topic: f.topic,
            event: anyArb("event"),
          }),
          { nil: undefined },
        ),
      });
    default:
      return fc.record({ filters: f.filters });
  }
}

// ---------------------------------------------------------------------------------------------
// byte-level variations (as task-arbs.ts)

function varint(n: number): number[] {
  const out: number[] = [];
  let v = n >>> 0;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return out;
}

export const soup = fc
  .array(
    fc.record({
      field: fc.oneof(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 536870911 })),
      wire: fc.nat(7),
      value: fc.uint8Array({ maxLength: 12 }),
      len: fc.option(fc.nat(0xffffffff), { nil: undefined }),
    }),
    { maxLength: 10 },
  )
  .map((fs) =>
    Buffer.concat(
      fs.map((f) => {
        const tag = varint(((f.field << 3) | f.wire) >>> 0);
        if (f.wire === 2) return Buffer.from([...tag, ...varint(f.len ?? f.value.length), ...f.value]);
        if (f.wire === 0) return Buffer.from([...tag, ...varint(f.value[0] ?? 0)]);
        if (f.wire === 1) return Buffer.from([...tag, ...Buffer.alloc(8, f.value[0] ?? 0)]);
        if (f.wire === 5) return Buffer.from([...tag, ...Buffer.alloc(4, f.value[0] ?? 0)]);
        return Buffer.from([...tag, ...f.value]);
      }),
    ),
  );

export function byteMutate(bytes: Uint8Array, ops: { at: number; kind: number; v: number }[]): Uint8Array {
  let b = Buffer.from(bytes);
  for (const o of ops) {
    const i = b.length ? o.at % b.length : 0;
    switch (o.kind % 5) {
      case 0:
        if (b.length) b[i] = o.v & 0xff;
        break;
      case 1:
        b = Buffer.concat([b.subarray(0, i), Buffer.from([o.v & 0xff]), b.subarray(i)]);
        break;
      case 2:
        b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1 + (o.v % 4))]);
        break;
      case 3:
        b = b.subarray(0, i);
        break;
      case 4:
        if (b.length) b[i]! ^= 1 << (o.v % 8);
        break;
    }
  }
  return b;
}

export const nsArb: fc.Arbitrary<NsSpec> = fc.oneof(
  { weight: 16, arbitrary: fc.constant<NsSpec>({ k: "test" }) },
  { weight: 1, arbitrary: fc.constant<NsSpec>({ k: "none" }) },
  {
    weight: 2,
    arbitrary: fc
      .array(
        fc.oneof(
          fc.constantFrom(...EXTRA_NAMESPACES, "../x", "", "a".repeat(77), "ns\0", "é", ".s", "-x", "a/b"),
          fc.string({ maxLength: 12 }),
        ),
        { minLength: 1, maxLength: 3 },
      )
      .map((values): NsSpec => ({ k: "raw", values })),
  },
);

const wire: { service: string; method: string }[] = [];
for (const [service, methods] of daemonMethods)
  for (const method of methods.keys()) wire.push({ service, method });
// The creates thrice as often: most other calls need something created first.
for (const service of [C, T]) wire.push({ service, method: "Create" }, { service, method: "Create" });

/**
 * A request body for a method: its structured encoding most of the time, else that encoding
 * mutated, with one field's wire type changed, protobuf soup, or random bytes (`how` says which).
 */
export function hostileBodyArb(
  structured: fc.Arbitrary<{ bytes: Uint8Array; how: string }>,
): fc.Arbitrary<{ bytes: Uint8Array; how: string }> {
  return fc.oneof(
    { weight: 16, arbitrary: structured },
    {
      weight: 4,
      arbitrary: fc
        .tuple(
          structured,
          fc.array(fc.record({ at: fc.nat(), kind: fc.nat(), v: fc.nat(255) }), {
            minLength: 1,
            maxLength: 4,
          }),
        )
        .map(([s, ops]) => ({ bytes: byteMutate(s.bytes, ops), how: "mutated" })),
    },
    {
      weight: 2,
      arbitrary: fc.tuple(structured, fc.nat(), fc.nat(7)).map(([s, at, w]) => {
        const b = Buffer.from(s.bytes);
        if (b.length) b[at % b.length] = (b[at % b.length]! & ~7) | w;
        return { bytes: b, how: "wrong wire type" };
      }),
    },
    { weight: 2, arbitrary: soup.map((bytes) => ({ bytes, how: "protobuf soup" })) },
    {
      weight: 1,
      arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes) => ({ bytes, how: "random bytes" })),
    },
  );
}

export function daemonInputArb(): fc.Arbitrary<DaemonInput> {
  return fc.constantFrom(...wire).chain(({ service, method }) => {
    const codec = daemonMethods.get(service)!.get(method)!.requestType as AnyMethod["requestType"];
    const structured = requestArb(service, method).map((r) => ({
      bytes: codec.encode(r),
      how: "structured",
    }));
    return fc
      .record({
        body: hostileBodyArb(structured),
        ns: nsArb,
        streamMs: fc.nat(200),
      })
      .map(({ body, ns, streamMs }) => ({
        service,
        method,
        payload: sanitize(service, method, body.bytes),
        ns,
        streamMs,
        how: body.how,
      }));
  });
}

// ---------------------------------------------------------------------------------------------
// the safety net

const safeRuntime = (r: string) => (SAFE_RUNTIMES.includes(r) ? r : FAIL_SHIM);

/** Methods that may name the sentinel as they come; the rest are pointed at f1 instead. */
const SENTINEL_OK = new Set([
  "Get",
  "ListPids",
  "ResizePty",
  "CloseIO",
  "Exec",
  "Create",
  "Update",
  "Metrics",
]);
/** Methods that may name the sentinel only for one of its execs. */
const SENTINEL_EXEC_ONLY = new Set(["Start", "DeleteProcess", "Kill", "Wait"]);

export function sanitize(service: string, method: string, bytes: Uint8Array): Uint8Array {
  const codec = daemonMethods.get(service)?.get(method)?.requestType as AnyMethod["requestType"] | undefined;
  if (!codec) return bytes;
  let req: Record<string, unknown>;
  try {
    req = codec.decode(bytes) as Record<string, unknown>;
  } catch {
    return bytes; // the daemon cannot decode it either
  }
  let changed = false;
  const set = (o: Record<string, unknown>, k: string, v: unknown) => {
    if (o[k] !== v) {
      o[k] = v;
      changed = true;
    }
  };
  if (service === C) {
    const c = req.container as containersapi.Container | undefined;
    if (c) {
      if (c.id === SENTINEL) set(c as never, "id", "f1");
      if (c.runtime) set(c.runtime as never, "name", safeRuntime(c.runtime.name));
    }
    if (req.id === SENTINEL) set(req, "id", "f1");
  }
  if (service === T) {
    if (method === "Create") set(req, "runtimePath", safeRuntime(String(req.runtimePath ?? "")));
    if (req.containerId === SENTINEL) {
      const exec = String(req.execId ?? "");
      if (!SENTINEL_OK.has(method) && !(SENTINEL_EXEC_ONLY.has(method) && exec !== ""))
        set(req, "containerId", "f1");
      else {
        // Never all of the sentinel's processes; never its resources; no stdio to open.
        if (method === "Kill") set(req, "all", false);
        if (method === "Update" && req.resources) set(req, "resources", undefined);
        if (method === "Exec") for (const k of ["stdin", "stdout", "stderr"]) set(req, k, "");
      }
    }
  }
  return changed ? codec.encode(req) : bytes;
}

/** The request metadata for an input's namespace. */
export function nsMetadata(ns: NsSpec, testNs: string): Record<string, string | string[]> {
  if (ns.k === "none") return {};
  if (ns.k === "test") return { "containerd-namespace": testNs };
  return { "containerd-namespace": ns.values };
}
