// Task API request bodies for message-level fuzzing: for every method, requests built from
// pools of hostile values (ids like `../x`, 10,000 characters, NUL bytes, unicode; bundles and
// fifos that are regular files, directories, symlinks, missing, relative or outside the allowed
// roots; signals and sizes across their ranges; runtime options, exec specs and resources in Any
// — nested, huge, of the wrong type), then maybe mutated at the byte level, re-encoded with wrong
// wire types, replaced by protobuf soup or random bytes, or padded with huge repeated fields.
//
// A safety net runs last (sanitize): this shim runs as root, and some request fields choose what
// it executes or where it writes (Create's runc binary, runc root and criu path, rootfs mounts,
// Checkpoint's image path, stdio fifos). Those are allowed only inside the test's temp root;
// anything else is rewritten before sending, so that no random input can touch the host.
import * as fs from "node:fs";
import { Any, runcoptions } from "@tsrunc/protocol";
import type { AnyMethod } from "@tsrunc/ttrpc";
import fc from "fast-check";
import { taskMethods } from "./shim-profile.js";

export interface Fixtures {
  root: string;
  /** The shim's own bundle (id "fz"). */
  bundle: string;
  bundlesDir: string;
  /** Paths of every kind, for bundle, stdio and checkpoint fields. */
  paths: string[];
  /** Absolute fifos (valid stdio). */
  fifos: string[];
  ids: string[];
}

export interface TaskInput {
  method: string;
  payload: Uint8Array;
  /** How the body was made (for failure messages). */
  how: string;
}

const SPEC_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process";
const RES_URL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";
const OPTS_URL = runcoptions.Options.typeName;

export const hostileIds = [
  "../x",
  "..",
  ".",
  "",
  "a/b",
  "/abs",
  "x".repeat(77),
  "x".repeat(10000),
  "a\0b",
  "\0",
  "é",
  "日本語",
  "🙂",
  "a\u202eb",
  "-a",
  "a-",
  "a..b",
  "A_b.c-d",
  "nope",
];

const json = (v: unknown) => Buffer.from(JSON.stringify(v));

/** `depth` levels of Any inside Any (each value is the next Any, encoded). */
export function nestedAny(depth: number, leaf: { typeUrl: string; value: Uint8Array }) {
  let cur: Uint8Array = Any.encode(leaf);
  for (let i = 0; i < depth; i++)
    cur = Any.encode({ typeUrl: "type.googleapis.com/google.protobuf.Any", value: cur });
  return { typeUrl: "type.googleapis.com/google.protobuf.Any", value: cur };
}

function anyArb(
  fx: Fixtures,
  kind: "options" | "spec" | "resources",
): fc.Arbitrary<{ typeUrl: string; value: Uint8Array } | undefined> {
  const good =
    kind === "spec"
      ? fc.constantFrom(
          { typeUrl: SPEC_URL, value: json({ args: ["/bin/true"], cwd: "/", user: { uid: 0, gid: 0 } }) },
          {
            typeUrl: SPEC_URL,
            value: json({ args: ["/bin/sleep", "1000"], cwd: "/", user: { uid: 0, gid: 0 }, terminal: true }),
          },
          { typeUrl: SPEC_URL, value: json({ args: [], cwd: "/", user: { uid: 0, gid: 0 } }) },
          { typeUrl: SPEC_URL, value: json({ args: "sh", cwd: 5 }) },
          { typeUrl: SPEC_URL, value: json(null) },
          {
            typeUrl: SPEC_URL,
            value: Buffer.from(
              `{"args":["/bin/true"],"cwd":"/","user":{"uid":0,"gid":0},"x":${nest(20000)}}`,
            ),
          },
        )
      : kind === "resources"
        ? fc.constantFrom(
            { typeUrl: RES_URL, value: json({ pids: { limit: 100 } }) },
            { typeUrl: RES_URL, value: json({ memory: { limit: -1 } }) },
            { typeUrl: RES_URL, value: json({ memory: { limit: 2 ** 63 } }) },
            { typeUrl: RES_URL, value: json({ cpu: { cpus: "0-1023" } }) },
            { typeUrl: RES_URL, value: json([]) },
          )
        : fc.constantFrom(
            { typeUrl: OPTS_URL, value: runcoptions.Options.encode({ root: `${fx.root}/runc-alt` }) },
            { typeUrl: OPTS_URL, value: runcoptions.Options.encode({ root: "relative/root" }) },
            {
              typeUrl: OPTS_URL,
              value: runcoptions.Options.encode({ noPivotRoot: true, noNewKeyring: true }),
            },
            { typeUrl: OPTS_URL, value: Buffer.from([0xff, 0xff, 0xff]) },
          );
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant(undefined) },
    { weight: 4, arbitrary: good },
    {
      weight: 1,
      arbitrary: fc.record({
        typeUrl: fc.oneof(
          fc.constantFrom(SPEC_URL, RES_URL, OPTS_URL, "", "type.googleapis.com/"),
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
      arbitrary: fc
        .constantFrom(1, 50, 2000)
        .map((d) => nestedAny(d, { typeUrl: OPTS_URL, value: new Uint8Array(0) })),
    },
    { weight: 1, arbitrary: fc.constant({ typeUrl: SPEC_URL, value: Buffer.from("[".repeat(200000)) }) },
  );
}

/** JSON text of `depth` nested arrays (built as text: JSON.stringify would overflow the stack). */
function nest(depth: number): string {
  return `${"[".repeat(depth)}1${"]".repeat(depth)}`;
}

function fields(fx: Fixtures) {
  const id = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...fx.ids) },
    { weight: 3, arbitrary: fc.constantFrom(...hostileIds) },
    { weight: 1, arbitrary: fc.string({ maxLength: 20, unit: "binary" }) },
  );
  const execId = fc.oneof(
    { weight: 4, arbitrary: fc.constant("") },
    { weight: 4, arbitrary: fc.constantFrom("e1", "e2") },
    { weight: 2, arbitrary: fc.constantFrom(...hostileIds) },
  );
  const path = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...fx.paths) },
    { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
  );
  const stdio = fc.oneof(
    { weight: 4, arbitrary: fc.constant("") },
    { weight: 3, arbitrary: fc.constantFrom(...fx.fifos) },
    { weight: 3, arbitrary: path },
  );
  const u32 = fc.oneof(fc.nat(70), fc.constantFrom(0, 9, 15, 18, 64, 65, 0x7fffffff, 0x80000000, 0xffffffff));
  const mount = fc.record({
    type: fc.oneof(
      fc.constantFrom("bind", "tmpfs", "overlay", "proc", "", "../x", "BIND", "t".repeat(70)),
      fc.string({ maxLength: 10 }),
    ),
    source: fc.oneof(
      fc.constantFrom(`${fx.root}/rootfs-template`, "tmpfs", "", "a\0b", "x".repeat(5000)),
      path,
    ),
    target: fc.oneof(
      { weight: 5, arbitrary: fc.constant("") },
      { weight: 1, arbitrary: fc.constantFrom("/etc", "../x", "rootfs") },
    ),
    options: fc.array(
      fc.oneof(
        fc.constantFrom("rbind", "ro", "rw", "remount", "size=1m", "a\0b", "x".repeat(5000)),
        fc.string({ maxLength: 8 }),
      ),
      { maxLength: 4 },
    ),
  });
  return { id, execId, path, stdio, u32, mount };
}

/** A structured request for `method`, as a message to encode. */
function requestArb(fx: Fixtures, method: string): fc.Arbitrary<Record<string, unknown>> {
  const f = fields(fx);
  switch (method) {
    case "Create":
      return fc.record(
        {
          id: f.id,
          bundle: fc.oneof(
            { weight: 4, arbitrary: fc.constantFrom(...fx.paths.filter((p) => p.startsWith(fx.bundlesDir))) },
            { weight: 2, arbitrary: f.path },
          ),
          rootfs: fc.oneof(
            { weight: 6, arbitrary: fc.constant([]) },
            { weight: 2, arbitrary: fc.array(f.mount, { maxLength: 3 }) },
          ),
          terminal: fc.boolean(),
          stdin: f.stdio,
          stdout: f.stdio,
          stderr: f.stdio,
          checkpoint: fc.oneof({ weight: 9, arbitrary: fc.constant("") }, { weight: 1, arbitrary: f.path }),
          parentCheckpoint: fc.oneof(
            { weight: 9, arbitrary: fc.constant("") },
            { weight: 1, arbitrary: f.path },
          ),
          options: anyArb(fx, "options"),
        },
        { requiredKeys: ["id", "bundle"] },
      );
    case "Exec":
      return fc.record(
        {
          id: f.id,
          execId: f.execId,
          terminal: fc.boolean(),
          stdin: f.stdio,
          stdout: f.stdio,
          stderr: f.stdio,
          spec: anyArb(fx, "spec"),
        },
        { requiredKeys: ["id", "execId"] },
      );
    case "Kill":
      return fc.record({ id: f.id, execId: f.execId, signal: f.u32, all: fc.boolean() });
    case "ResizePty":
      return fc.record({ id: f.id, execId: f.execId, width: f.u32, height: f.u32 });
    case "CloseIO":
      return fc.record({ id: f.id, execId: f.execId, stdin: fc.boolean() });
    case "Update":
      return fc.record(
        {
          id: f.id,
          resources: anyArb(fx, "resources"),
          annotations: fc.dictionary(
            fc.oneof(fc.string({ maxLength: 8 }), fc.constant("__proto__")),
            fc.string({ maxLength: 8 }),
            { maxKeys: 3 },
          ),
        },
        { requiredKeys: ["id"] },
      );
    case "Checkpoint":
      return fc.record(
        { id: f.id, path: f.path, options: anyArb(fx, "options") },
        { requiredKeys: ["id", "path"] },
      );
    case "Shutdown":
      return fc.record({ id: f.id, now: fc.boolean() });
    default:
      return fc.record({ id: f.id, execId: f.execId });
  }
}

// ---------------------------------------------------------------------------------------------
// byte-level variations

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

/** Random protobuf fields: right numbers with wrong wire types, groups, overlong lengths. */
const soup = fc
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

/** Flip the wire type of one field of a valid encoding (a string as varint, and so on). */
function wrongWireType(bytes: Uint8Array, at: number, wire: number): Uint8Array {
  if (bytes.length === 0) return bytes;
  const b = Buffer.from(bytes);
  const i = at % b.length;
  b[i] = (b[i]! & ~7) | (wire & 7);
  return b;
}

function byteMutate(bytes: Uint8Array, ops: { at: number; kind: number; v: number }[]): Uint8Array {
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

/** Huge repeated fields: Create with thousands of rootfs mounts, Update with thousands of annotations. */
function huge(fx: Fixtures, method: string, n: number): Record<string, unknown> | undefined {
  if (method === "Create")
    return {
      id: "fz",
      bundle: fx.bundle,
      rootfs: Array.from({ length: n }, (_, i) => ({
        type: "tmpfs",
        source: "tmpfs",
        options: [`size=${i}k`],
      })),
    };
  if (method === "Update")
    return {
      id: "fz",
      annotations: Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, "v".repeat(32)])),
    };
  if (method === "Exec")
    return {
      id: "fz",
      execId: "e1",
      spec: {
        typeUrl: SPEC_URL,
        value: json({
          args: Array.from({ length: n }, () => "/bin/true"),
          cwd: "/",
          user: { uid: 0, gid: 0 },
        }),
      },
    };
  return undefined;
}

export function taskInputArb(fx: Fixtures): fc.Arbitrary<TaskInput> {
  const names = [...taskMethods.keys()];
  return fc.constantFrom(...names).chain((method) => {
    const codec = taskMethods.get(method)!.requestType as AnyMethod["requestType"];
    const structured = requestArb(fx, method).map((r) => ({ bytes: codec.encode(r), how: "structured" }));
    return fc
      .oneof(
        { weight: 12, arbitrary: structured },
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
          arbitrary: fc
            .tuple(structured, fc.nat(), fc.nat(7))
            .map(([s, at, w]) => ({ bytes: wrongWireType(s.bytes, at, w), how: "wrong wire type" })),
        },
        { weight: 2, arbitrary: soup.map((bytes) => ({ bytes, how: "protobuf soup" })) },
        {
          weight: 1,
          arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes) => ({ bytes, how: "random bytes" })),
        },
        {
          weight: 1,
          arbitrary: fc.constantFrom(100, 10000).map((n) => {
            const h = huge(fx, method, n);
            return h
              ? { bytes: codec.encode(h), how: `huge repeated (${n})` }
              : { bytes: new Uint8Array(0), how: "empty" };
          }),
        },
      )
      .map(({ bytes, how }) => ({ method, payload: sanitize(fx, method, bytes), how }));
  });
}

// ---------------------------------------------------------------------------------------------
// the safety net

function inside(fx: Fixtures, p: string): boolean {
  return p === fx.root || p.startsWith(`${fx.root}/`);
}

/** A stdio path the shim may open: empty, or not an existing fifo outside the temp root. */
function safeStdio(fx: Fixtures, p: string): string {
  if (!p || inside(fx, p)) return p;
  try {
    if (fs.statSync(p).isFIFO()) return `${fx.root}/fx/outside-fifo-replaced`;
  } catch {
    // does not exist: harmless
  }
  return p;
}

export function sanitize(fx: Fixtures, method: string, bytes: Uint8Array): Uint8Array {
  const codec = taskMethods.get(method)!.requestType as AnyMethod["requestType"];
  let req: Record<string, unknown>;
  try {
    req = codec.decode(bytes) as Record<string, unknown>;
  } catch {
    return bytes; // the shim cannot decode it either
  }
  let changed = false;
  const set = (k: string, v: unknown) => {
    if (req[k] !== v) {
      req[k] = v;
      changed = true;
    }
  };
  if (method === "Create" || method === "Exec") {
    for (const k of ["stdin", "stdout", "stderr"]) set(k, safeStdio(fx, String(req[k] ?? "")));
  }
  if (method === "Create") {
    const opts = req.options as { typeUrl: string; value: Uint8Array } | undefined;
    if (opts?.typeUrl.endsWith(OPTS_URL)) {
      try {
        const o = runcoptions.Options.decode(opts.value);
        if (
          (o.binaryName && o.binaryName !== "runc") ||
          o.criuPath ||
          (o.root?.startsWith("/") && !inside(fx, o.root)) ||
          o.shimCgroup ||
          o.systemdCgroup
        ) {
          set("options", {
            typeUrl: OPTS_URL,
            value: runcoptions.Options.encode({ root: `${fx.root}/runc-alt` }),
          });
        }
      } catch {
        // undecodable options: refused by the shim
      }
    }
    const rootfs = (req.rootfs as { type: string; source: string; options: string[] }[]) ?? [];
    // Relative sources resolve against the shim's cwd ("/"): only the temp root and a few
    // non-path sources stay.
    const words = new Set(["", "tmpfs", "none", "proc", "overlay"]);
    const safe = rootfs.map((m) =>
      inside(fx, m.source) || words.has(m.source) ? m : { ...m, source: `${fx.root}/rootfs-template` },
    );
    if (safe.some((m, i) => m !== rootfs[i])) set("rootfs", safe);
  }
  if (method === "Checkpoint") {
    // The image goes where the request says (containerd's choice, by design): absolute paths
    // are kept to a directory of their own in the temp root.
    const p = String(req.path ?? "");
    if (p.startsWith("/") && !p.startsWith(`${fx.root}/ckpt/`)) set("path", `${fx.root}/ckpt/image`);
    const opts = req.options as { typeUrl: string; value: Uint8Array } | undefined;
    if (opts) set("options", undefined);
  }
  return changed ? codec.encode(req) : bytes;
}
