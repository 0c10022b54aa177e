// Property tests over every generated message type, with random messages built from the
// schema itself (protobufjs reflection of proto/):
// - our encoder writes exactly the bytes protobufjs's reflection encoder writes (an encoder we
//   did not write, reading the same .proto files);
// - decode(encode(m)) gives back create(m).

import assert from "node:assert/strict";
import path from "node:path";
import fc from "fast-check";
import protobufjs from "protobufjs";
import t from "tap";
import type { MessageType } from "./runtime.js";
import { allMessageTypes, hex, protoDir, reflectionRoot } from "./test-support.js";

const root = reflectionRoot();
const Long = protobufjs.util.Long as unknown as { fromString(s: string, unsigned: boolean): unknown };

const SCALAR: Record<string, fc.Arbitrary<unknown>> = {
  string: fc.oneof(fc.string(), fc.string({ unit: "grapheme", maxLength: 8 })),
  bool: fc.boolean(),
  int32: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  uint32: fc.nat({ max: 2 ** 32 - 1 }),
  int64: fc.oneof(fc.maxSafeInteger(), fc.constantFrom(0, -1, -62135596800, 1700000000)),
  uint64: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(0n, 1n, 2n ** 64n - 1n)),
  bytes: fc.uint8Array({ maxLength: 16 }),
};

function fieldValue(f: protobufjs.Field, depth: number): fc.Arbitrary<unknown> {
  const rt = f.resolvedType;
  if (rt instanceof protobufjs.Type) return messageArb(rt, depth + 1);
  if (rt instanceof protobufjs.Enum) return fc.constantFrom(...Object.values(rt.values));
  const s = SCALAR[f.type];
  if (!s) throw new Error(`no arbitrary for ${f.type}`);
  return s;
}

function messageArb(type: protobufjs.Type, depth = 0): fc.Arbitrary<Record<string, unknown>> {
  const rec: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of type.fieldsArray) {
    const always = f.options?.["(tsrunc.always_present)"] === true;
    let v: fc.Arbitrary<unknown>;
    if (f.map) v = fc.dictionary(fc.string({ maxLength: 6 }), fieldValue(f, depth), { maxKeys: 3 });
    else if (f.repeated) v = fc.array(fieldValue(f, depth), { maxLength: 3 });
    else v = fieldValue(f, depth);
    // Optional message fields are sometimes absent; non-nullable ones always present (on the wire
    // we write them anyway, protobufjs only when set).
    if (f.resolvedType instanceof protobufjs.Type && !f.map && !f.repeated && !always) {
      v = fc.option(v, { nil: undefined });
    }
    rec[f.name] = v;
  }
  return fc.record(rec);
}

/** The same message for protobufjs: bigints become Long. */
function toPbjs(v: unknown): unknown {
  if (typeof v === "bigint") return Long.fromString(v.toString(), true);
  if (v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.map(toPbjs);
  if (v && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = toPbjs(x);
    return out;
  }
  return v;
}

const types = allMessageTypes();

t.test("every message type of proto/ is generated, and nothing else", async (t) => {
  const fromProto: string[] = [];
  const walk = (ns: protobufjs.NamespaceBase) => {
    for (const o of ns.nestedArray) {
      if (o instanceof protobufjs.Type && o.filename?.startsWith(protoDir + path.sep)) {
        fromProto.push(o.fullName.slice(1));
      }
      if (o instanceof protobufjs.Namespace) walk(o);
    }
  };
  walk(root);
  t.same(types.map((x) => x.typeName).sort(), fromProto.sort());
  t.ok(types.length > 120, `${types.length} message types`);
});

for (const type of types) {
  const refl = root.lookupType(type.typeName);
  const arb = messageArb(refl);
  t.test(type.typeName, async (t) => {
    fc.assert(
      fc.property(arb, (m) => {
        const ours = (type as MessageType<Record<string, unknown>>).encode(m);
        const theirs = refl.encode(toPbjs(m) as Record<string, unknown>).finish();
        if (hex(ours) !== hex(theirs)) {
          throw new Error(`encoding differs from protobufjs:\n ours   ${hex(ours)}\n theirs ${hex(theirs)}`);
        }
        assert.deepStrictEqual(type.decode(ours), type.create(m as never));
      }),
      { numRuns: 40 },
    );
    t.pass("40 random messages: same bytes as protobufjs, round trip exact");
  });
}
