import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
// The full (reflection) build, for the reference codec below only: production code may not use it.
import protobuf from "protobufjs";
import t from "tap";
import {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  type Request,
  type RequestInit,
  type Response,
  type ResponseInit,
} from "./messages.js";

const hex = (b: ArrayLike<number>) => Buffer.from(b as Uint8Array).toString("hex");
const unhex = (s: string) => Buffer.from(s.replace(/[\s|]/g, ""), "hex");

// ---------------------------------------------------------------------------------------------
// The reference: what messages.ts did before its codecs were written by hand — protobufjs
// reflection built from a JSON descriptor of request.proto and google.rpc.Status, and the same
// mapping of its results.

const descriptor = {
  nested: {
    ttrpc: {
      nested: {
        Request: {
          fields: {
            service: { type: "string", id: 1 },
            method: { type: "string", id: 2 },
            payload: { type: "bytes", id: 3 },
            timeoutNano: { type: "int64", id: 4 },
            metadata: { rule: "repeated", type: "KeyValue", id: 5 },
          },
        },
        Response: {
          fields: {
            status: { type: "google.rpc.Status", id: 1 },
            payload: { type: "bytes", id: 2 },
          },
        },
        KeyValue: {
          fields: { key: { type: "string", id: 1 }, value: { type: "string", id: 2 } },
        },
      },
    },
    google: {
      nested: {
        rpc: {
          nested: {
            Status: {
              fields: {
                code: { type: "int32", id: 1 },
                message: { type: "string", id: 2 },
                details: { rule: "repeated", type: "google.protobuf.Any", id: 3 },
              },
            },
          },
        },
        protobuf: {
          nested: {
            Any: { fields: { typeUrl: { type: "string", id: 1 }, value: { type: "bytes", id: 2 } } },
          },
        },
      },
    },
  },
};

const root = protobuf.Root.fromJSON(descriptor);
const RefRequest = root.lookupType("ttrpc.Request");
const RefResponse = root.lookupType("ttrpc.Response");
const hasOwn = Object.prototype.hasOwnProperty;

const ref = {
  encodeRequest: (req: RequestInit): Uint8Array =>
    RefRequest.encode(req as unknown as Record<string, unknown>).finish(),
  encodeResponse: (res: ResponseInit): Uint8Array =>
    RefResponse.encode(res as unknown as Record<string, unknown>).finish(),
  decodeRequest(bytes: Uint8Array): Request {
    const m = RefRequest.decode(bytes) as unknown as Record<string, unknown>;
    const tn = m.timeoutNano as number | { toNumber(): number };
    return {
      service: m.service as string,
      method: m.method as string,
      payload: m.payload as Uint8Array,
      timeoutNano: typeof tn === "number" ? tn : tn.toNumber(),
      metadata: m.metadata as Request["metadata"],
      hasPayload: hasOwn.call(m, "payload"),
    };
  },
  decodeResponse(bytes: Uint8Array): Response {
    const m = RefResponse.decode(bytes) as unknown as { status?: Response["status"]; payload: Uint8Array };
    return { status: m.status ?? { code: 0, message: "", details: [] }, payload: m.payload };
  },
};

/** Comparable forms (bytes as hex, so Buffer, Uint8Array and protobufjs's [] compare equal). */
const normRequest = (r: Request) => ({
  service: r.service,
  method: r.method,
  payload: hex(r.payload),
  timeoutNano: r.timeoutNano,
  metadata: r.metadata.map((kv) => [kv.key, kv.value]),
  hasPayload: r.hasPayload,
});
const normResponse = (r: Response) => ({
  code: r.status.code,
  message: r.status.message,
  details: r.status.details.map((d) => [d.typeUrl, hex(d.value)]),
  payload: hex(r.payload),
});

type Outcome = { ok: true; value: unknown } | { ok: false };
function attempt(f: () => unknown): Outcome {
  try {
    return { ok: true, value: f() };
  } catch {
    return { ok: false };
  }
}

// ---------------------------------------------------------------------------------------------
// Golden vectors, derived by hand from the encoding rules.

// Request {service "svc.v1.S", method "Do", payload de ad be ef, timeout_nano 5 s,
//          metadata [{k, v1}, {x-id, ""}]}
const GOLDEN_REQUEST =
  "0a08 7376632e76312e53" + //   1 LEN 8 "svc.v1.S"
  "1202 446f" + //                2 LEN 2 "Do"
  "1a04 deadbeef" + //            3 LEN 4
  "20 80e497d012" + //            4 VARINT 5_000_000_000 = 0x1_2a05_f200, 7 bits at a time, low first
  "2a07 0a016b 12027631" + //     5 LEN 7 {1 "k", 2 "v1"}
  "2a06 0a04782d6964"; //         5 LEN 6 {1 "x-id"}  (empty value not written)

// Response {status {code 9, message "bad", details [{t/a, 01}, {t/b, empty}]}, payload "ok"}
const GOLDEN_RESPONSE =
  "0a18" + //                     1 LEN 24: Status
  "  0809" + //                     1 VARINT 9
  "  1203 626164" + //              2 LEN 3 "bad"
  "  1a08 0a03742f61 120101" + //   3 LEN 8 Any {1 "t/a", 2 [01]}
  "  1a05 0a03742f62" + //          3 LEN 5 Any {1 "t/b"}
  "1202 6f6b"; //                 2 LEN 2 "ok"

t.test("golden: a Request with every field", async (t) => {
  const init: RequestInit = {
    service: "svc.v1.S",
    method: "Do",
    payload: new Uint8Array([0xde, 0xad, 0xbe, 0xef]),
    timeoutNano: 5_000_000_000,
    metadata: [
      { key: "k", value: "v1" },
      { key: "x-id", value: "" },
    ],
  };
  t.equal(hex(encodeRequest(init)), hex(unhex(GOLDEN_REQUEST)));
  t.equal(hex(ref.encodeRequest(init)), hex(unhex(GOLDEN_REQUEST)), "the reference agrees");
  const r = decodeRequest(unhex(GOLDEN_REQUEST));
  t.strictSame(normRequest(r), {
    service: "svc.v1.S",
    method: "Do",
    payload: "deadbeef",
    timeoutNano: 5_000_000_000,
    metadata: [
      ["k", "v1"],
      ["x-id", ""],
    ],
    hasPayload: true,
  });
});

t.test("golden: a Response with a status with details", async (t) => {
  const init: ResponseInit = {
    status: {
      code: 9,
      message: "bad",
      details: [
        { typeUrl: "t/a", value: new Uint8Array([1]) },
        { typeUrl: "t/b", value: new Uint8Array(0) },
      ],
    },
    payload: Buffer.from("ok"),
  };
  t.equal(hex(encodeResponse(init)), hex(unhex(GOLDEN_RESPONSE)));
  t.equal(hex(ref.encodeResponse(init)), hex(unhex(GOLDEN_RESPONSE)), "the reference agrees");
  const r = decodeResponse(unhex(GOLDEN_RESPONSE));
  t.strictSame(normResponse(r), {
    code: 9,
    message: "bad",
    details: [
      ["t/a", "01"],
      ["t/b", ""],
    ],
    payload: "6f6b",
  });
  t.ok(r.status.details[1]?.value instanceof Uint8Array, "an absent Any.value is empty bytes");
});

t.test("Request encodes with request.proto's field numbers and wire types", async (t) => {
  const bytes = encodeRequest({
    service: "s",
    method: "m",
    payload: new Uint8Array([1, 2]),
    timeoutNano: 1000,
    metadata: [{ key: "k", value: "v" }],
  });
  // 1:"s" 2:"m" 3:[01 02] 4:varint 1000 5:{1:"k" 2:"v"}
  t.equal(hex(bytes), "0a017312016d1a020102" + "20e807" + "2a060a016b120176");
});

t.test("Request decodes bytes as a Go client writes them", async (t) => {
  const r = decodeRequest(Buffer.from("0a017312016d1a020102" + "20e807" + "2a060a016b120176", "hex"));
  t.equal(r.service, "s");
  t.equal(r.method, "m");
  t.same([...r.payload], [1, 2]);
  t.equal(r.timeoutNano, 1000);
  t.same(
    r.metadata.map((kv) => ({ key: kv.key, value: kv.value })),
    [{ key: "k", value: "v" }],
  );
  t.equal(r.hasPayload, true);
});

t.test("defaults: empty input is a message with every field at its default", async (t) => {
  const r = decodeRequest(new Uint8Array(0));
  t.strictSame(normRequest(r), {
    service: "",
    method: "",
    payload: "",
    timeoutNano: 0,
    metadata: [],
    hasPayload: false,
  });
  t.ok(r.payload instanceof Uint8Array);
  const res = decodeResponse(new Uint8Array(0));
  t.strictSame(normResponse(res), { code: 0, message: "", details: [], payload: "" });
  t.ok(res.payload instanceof Uint8Array);
  t.equal(encodeRequest({ service: "", method: "" }).length, 0);
  t.equal(encodeResponse({}).length, 0);
  // A present but empty status is written (a message field), and reads as OK.
  t.equal(hex(encodeResponse({ status: { code: 0 } })), "0a00");
  t.equal(decodeResponse(unhex("0a00")).status.code, 0);
});

t.test("payload presence: an empty payload is never on the wire", async (t) => {
  t.equal(decodeRequest(encodeRequest({ service: "s", method: "m" })).hasPayload, false);
  // proto3 does not write an empty bytes field (neither does Go), so an empty payload is absent…
  t.equal(hex(encodeRequest({ service: "s", method: "m", payload: new Uint8Array(0) })), "0a017312016d");
  // …and an explicit zero-length field 3 decodes as absent too (proto3 implicit presence).
  const explicit = decodeRequest(Buffer.from("0a017312016d1a00", "hex"));
  t.equal(explicit.hasPayload, false);
  t.equal(explicit.payload.length, 0);
  t.equal(decodeRequest(Buffer.from("0a017312016d1a0100", "hex")).hasPayload, true);
  // The last occurrence wins, an empty one included.
  t.equal(decodeRequest(unhex("1a0101 1a00")).hasPayload, false);
  t.equal(hex(decodeRequest(unhex("1a00 1a0107")).payload), "07");
});

t.test("payloads are views of the input, not copies", async (t) => {
  const input = unhex(GOLDEN_REQUEST);
  const r = decodeRequest(input);
  t.equal(r.payload.buffer, input.buffer);
  t.ok(Buffer.isBuffer(r.payload), "a Buffer in, Buffer views out");
  const plain = new Uint8Array(input);
  const p = decodeRequest(plain).payload;
  t.equal(p.buffer, plain.buffer);
  t.equal(hex(p), "deadbeef");
  const res = unhex(GOLDEN_RESPONSE);
  t.equal(decodeResponse(res).payload.buffer, res.buffer);
});

t.test("timeout_nano is an int64: large, zero and negative values", async (t) => {
  const ns = 3_600_000_000_000; // one hour, beyond 2^32
  t.equal(decodeRequest(encodeRequest({ service: "", method: "", timeoutNano: ns })).timeoutNano, ns);
  t.equal(hex(encodeRequest({ service: "", method: "", timeoutNano: 0 })), "", "zero is not written");
  // Negative int64 varints take ten bytes (two's complement), as Go writes them.
  t.equal(hex(encodeRequest({ service: "", method: "", timeoutNano: -1 })), "20ffffffffffffffffff01");
  t.equal(decodeRequest(unhex("20ffffffffffffffffff01")).timeoutNano, -1);
  t.equal(decodeRequest(unhex("2080808080f0ffffffff01")).timeoutNano, -(2 ** 32));
  // int64 min and max (max rounds to 2^63 as a number, as Long.toNumber does).
  t.equal(decodeRequest(unhex("2080808080808080808001")).timeoutNano, -(2 ** 63));
  t.equal(decodeRequest(unhex("20ffffffffffffffff7f")).timeoutNano, 2 ** 63);
  for (const v of [
    1,
    127,
    128,
    2 ** 28 - 1,
    2 ** 28,
    2 ** 31,
    2 ** 32 - 1,
    2 ** 32,
    2 ** 35,
    Number.MAX_SAFE_INTEGER,
    -Number.MAX_SAFE_INTEGER,
    -(2 ** 31),
    -(2 ** 32) - 1,
    -5_000_000_000,
  ]) {
    const bytes = encodeRequest({ service: "", method: "", timeoutNano: v });
    t.equal(hex(bytes), hex(ref.encodeRequest({ service: "", method: "", timeoutNano: v })), `encode ${v}`);
    t.equal(decodeRequest(bytes).timeoutNano, v, `round trip ${v}`);
  }
});

t.test("unknown fields of every wire type are skipped, known fields still read", async (t) => {
  const unknown =
    "30 96 01" + //              6 VARINT 150
    "39 0102030405060708" + //   7 I64
    "42 03 616263" + //          8 LEN 3
    "4b 0801 4c" + //            9 SGROUP {1 VARINT 1} EGROUP
    "55 01020304" + //           10 I32
    "f8ffffff0f 01"; //          536870911 (the largest field number) VARINT 1
  const r = decodeRequest(unhex(`${unknown}0a0173${unknown}2a050a016b3001${unknown}`));
  t.equal(r.service, "s");
  t.same(
    r.metadata.map((kv) => [kv.key, kv.value]),
    [["k", ""]],
    "an unknown field inside KeyValue is skipped",
  );
  const res = decodeResponse(unhex(`${unknown}0a0a08051a060a01741a0100${unknown}1201ff`));
  t.equal(res.status.code, 5);
  t.same(
    res.status.details.map((d) => d.typeUrl),
    ["t"],
    "an unknown field inside Any is skipped",
  );
  t.equal(hex(res.payload), "ff");
  // A known field number with an unexpected wire type is an unknown field (protobufjs and Go).
  t.equal(decodeRequest(unhex("0805 0a0173")).service, "s");
  t.equal(decodeRequest(unhex("2203616263")).timeoutNano, 0);
});

t.test("a status field seen twice merges (scalars: last wins; details: appended)", async (t) => {
  const bytes = unhex("0a09 0805 1203 616263 1a00" + "0a06 1202 7879 1a00" + "0a02 0809");
  const r = decodeResponse(bytes);
  t.strictSame(normResponse(r), normResponse(ref.decodeResponse(bytes)));
  t.equal(r.status.code, 9);
  t.equal(r.status.message, "xy");
  t.equal(r.status.details.length, 2);
});

t.test("malformed input throws an error that says what and where", async (t) => {
  const cases: [string, (b: Uint8Array) => unknown, string, RegExp][] = [
    [
      "0a0561",
      decodeRequest,
      "string past the end",
      /malformed Request: field service: length 5 at offset 2 overruns its message by 4/,
    ],
    [
      "1a",
      decodeRequest,
      "length prefix missing",
      /malformed Request: field payload: length truncated or invalid at offset 1/,
    ],
    [
      "1a0a0102",
      decodeRequest,
      "payload past the end",
      /field payload: length 10 .* overruns its message by 8/,
    ],
    ["2080", decodeRequest, "truncated varint", /field timeout_nano: varint truncated at offset 2/],
    [
      "20ffffffffffffffffffff01",
      decodeRequest,
      "11-byte varint",
      /field timeout_nano: varint longer than 10 bytes/,
    ],
    [
      "2a09 0a0561",
      decodeRequest,
      "KeyValue past the end",
      /field metadata: length 9 at offset 2 overruns its message by 6/,
    ],
    // key fits in the buffer but not in its KeyValue: must not read into the next field
    [
      "2a03 0a0461616161 0a0173",
      decodeRequest,
      "field past its nested message",
      /field metadata.key: length 4 at offset 4 overruns its message by 3/,
    ],
    ["00", decodeRequest, "field number 0", /malformed Request: illegal tag: field number 0/],
    ["0f", decodeRequest, "wire type 7", /malformed Request: invalid wire type 7/],
    ["0c", decodeRequest, "end group without a start", /malformed Request: invalid wire type 4/],
    ["0b 1201", decodeRequest, "unterminated group", /malformed Request/],
    ["0b 14", decodeRequest, "mismatched end group", /malformed Request: invalid end group tag/],
    ["ffffffffff0f", decodeRequest, "overlong tag", /malformed Request: invalid tag encoding/],
    [
      "0a05 0805 1202 61",
      decodeResponse,
      "status message past the end",
      /malformed Response: field status.message: length 2 .* overruns its message by 1/,
    ],
    [
      "0a04 1a0a0a01",
      decodeResponse,
      "Any past its Status",
      /malformed Response: field status.details: length 10 .* overruns its message by 8/,
    ],
    ["0a05 1a03 0a0574", decodeResponse, "type_url past its Any", /field status.details.type_url: length 5/],
    [
      "1205 6f6b",
      decodeResponse,
      "payload past the end",
      /malformed Response: field payload: length 5 at offset 2 overruns its message by 3/,
    ],
    ["ffffff", decodeResponse, "garbage", /malformed Response/],
  ];
  for (const [h, decode, what, message] of cases) {
    const bytes = unhex(h);
    t.throws(() => decode(bytes), { message }, what);
    const refDecode = decode === decodeRequest ? ref.decodeRequest : ref.decodeResponse;
    t.throws(() => refDecode(bytes), `${what}: the reference throws too`);
  }
  t.throws(() => decodeRequest(Buffer.from([0x0a, 0x05, 0x61])));
  t.throws(() => decodeResponse(Buffer.from([0xff, 0xff, 0xff])));
  t.throws(() => decodeRequest("0a00" as unknown as Uint8Array), /malformed Request/, "not bytes");
  // Groups nest at most protobufjs's recursion limit deep.
  t.throws(() => decodeRequest(new Uint8Array(300).fill(0x33)), /malformed Request: max depth exceeded/);
});

t.test("huge inputs decode or fail in linear time", async (t) => {
  const unknownVarints = Buffer.alloc(4 << 20);
  for (let i = 0; i < unknownVarints.length; i += 2) unknownVarints[i] = 0x30; // 6 VARINT 0
  const t0 = performance.now();
  t.equal(decodeRequest(unknownVarints).service, "");
  const garbage = Buffer.alloc(4 << 20);
  for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 2654435761) >>> 24;
  attempt(() => decodeRequest(garbage));
  attempt(() => decodeResponse(garbage));
  t.ok(performance.now() - t0 < 5000, "well under 5 s for 12 MiB");
});

// ---------------------------------------------------------------------------------------------
// Properties: against the reference, both ways.

// Strings: ASCII, any code point, and any UTF-16 code unit (lone surrogates included, which
// protobufjs's writer encodes as three bytes; the readers then agree on the replacement).
const anyString = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: "binary", maxLength: 8 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 6 }),
);
const validString = fc.oneof(fc.string({ maxLength: 12 }), fc.string({ unit: "grapheme", maxLength: 6 }));
const bytesArb = fc.oneof(
  fc.uint8Array({ maxLength: 40 }),
  fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
);
const int64Arb = fc.oneof(
  fc.integer(),
  fc.integer({ min: -Number.MAX_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }),
  fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(Number),
  fc.constantFrom(0, -1, 1, 2 ** 32, -(2 ** 32), 2 ** 53, -(2 ** 63)),
);

function requestInit(str: fc.Arbitrary<string>): fc.Arbitrary<RequestInit> {
  return fc.record(
    {
      service: str,
      method: str,
      payload: fc.option(bytesArb, { nil: undefined }),
      timeoutNano: int64Arb,
      metadata: fc.array(fc.record({ key: str, value: str }), { maxLength: 4 }),
    },
    { requiredKeys: ["service", "method"] },
  );
}

function responseInit(str: fc.Arbitrary<string>): fc.Arbitrary<ResponseInit> {
  const status = fc.record(
    {
      code: fc.oneof(fc.integer({ min: 0, max: 16 }), fc.integer()),
      message: str,
      details: fc.array(fc.record({ typeUrl: str, value: bytesArb }), { maxLength: 3 }),
    },
    { requiredKeys: ["code"] },
  );
  return fc.record({
    status: fc.option(status, { nil: undefined }),
    payload: fc.option(bytesArb, { nil: undefined }),
  });
}

t.test("property: Request encodes to the reference's bytes, and each decodes the other's", async (t) => {
  fc.assert(
    fc.property(requestInit(anyString), (init) => {
      const ours = encodeRequest(init);
      const theirs = ref.encodeRequest(init);
      if (hex(ours) !== hex(theirs)) return false;
      // Both throw on strings that were not valid UTF-16 (lone surrogates), as Go would.
      const a = attempt(() => normRequest(decodeRequest(theirs)));
      const b = attempt(() => normRequest(ref.decodeRequest(ours)));
      return JSON.stringify(a) === JSON.stringify(b);
    }),
    { numRuns: 1500 },
  );
  t.pass();
});

t.test("property: Response encodes to the reference's bytes, and each decodes the other's", async (t) => {
  fc.assert(
    fc.property(responseInit(anyString), (init) => {
      const ours = encodeResponse(init);
      const theirs = ref.encodeResponse(init);
      if (hex(ours) !== hex(theirs)) return false;
      const a = attempt(() => normResponse(decodeResponse(theirs)));
      const b = attempt(() => normResponse(ref.decodeResponse(ours)));
      return JSON.stringify(a) === JSON.stringify(b);
    }),
    { numRuns: 1500 },
  );
  t.pass();
});

t.test("property: Request round-trips", async (t) => {
  fc.assert(
    fc.property(requestInit(validString), (init) => {
      const r = decodeRequest(encodeRequest(init));
      return (
        JSON.stringify(normRequest(r)) ===
        JSON.stringify({
          service: init.service,
          method: init.method,
          payload: hex(init.payload ?? []),
          timeoutNano:
            Math.abs(init.timeoutNano ?? 0) <= Number.MAX_SAFE_INTEGER
              ? (init.timeoutNano ?? 0)
              : r.timeoutNano,
          metadata: (init.metadata ?? []).map((kv) => [kv.key, kv.value]),
          hasPayload: (init.payload?.length ?? 0) > 0,
        })
      );
    }),
    { numRuns: 1000 },
  );
  t.pass();
});

t.test("property: Response round-trips", async (t) => {
  fc.assert(
    fc.property(responseInit(validString), (init) => {
      const r = decodeResponse(encodeResponse(init));
      const s = init.status;
      return (
        JSON.stringify(normResponse(r)) ===
        JSON.stringify({
          code: s?.code ?? 0,
          message: s?.message ?? "",
          details: (s?.details ?? []).map((d) => [d.typeUrl, hex(d.value)]),
          payload: hex(init.payload ?? []),
        })
      );
    }),
    { numRuns: 1000 },
  );
  t.pass();
});

// Wire-level garbage with structure: fields of random number and wire type, varints of any
// length, lengths that lie, groups that do or do not close, nesting; then possibly cut short
// or with a byte changed.
const varintBytes = (n: bigint): number[] => {
  const out: number[] = [];
  let v = BigInt.asUintN(64, n);
  do {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v ? b | 0x80 : b);
  } while (v);
  return out;
};
const rawVarint = fc.oneof(
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(varintBytes),
  fc.array(fc.integer({ min: 0x80, max: 0xff }), { minLength: 1, maxLength: 12 }).map((a) => [...a, 1]),
  fc.array(fc.integer({ min: 0x80, max: 0xff }), { minLength: 1, maxLength: 12 }),
);
const fieldsArb: fc.Arbitrary<number[]> = fc.letrec((tie) => ({
  fields: fc.array(tie("field"), { maxLength: 6 }).map((fs) => (fs as number[][]).flat()),
  field: fc
    .record({
      no: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 0, max: 20 }), fc.constant(536870911)),
      wire: fc.oneof(fc.constantFrom(0, 2, 2, 2), fc.integer({ min: 0, max: 7 })),
      varint: rawVarint,
      fixed: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 9 }),
      body: fc.oneof(
        { maxDepth: 3, depthSize: "small", withCrossShrink: true },
        fc.uint8Array({ maxLength: 12 }).map((b) => [...b]),
        tie("fields") as fc.Arbitrary<number[]>,
      ),
      lie: fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: -3, max: 3 })),
      endNo: fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 20 })),
    })
    .map(({ no, wire, varint, fixed, body, lie, endNo }) => {
      const tag = varintBytes(BigInt(no) * 8n + BigInt(wire));
      switch (wire) {
        case 0:
          return [...tag, ...varint];
        case 1:
        case 5:
          return [...tag, ...fixed.slice(0, wire === 1 ? 8 : 4)];
        case 2:
          return [...tag, ...varintBytes(BigInt(Math.max(0, body.length + lie))), ...body];
        case 3:
          return [...tag, ...body, ...(endNo < 0 ? [] : varintBytes(BigInt((endNo || no) * 8 + 4)))];
        default:
          return [...tag, ...body];
      }
    }),
})).fields as fc.Arbitrary<number[]>;

const mutate = (valid: fc.Arbitrary<Uint8Array>) =>
  fc
    .tuple(valid, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom("cut", "set", "insert", "none"))
    .map(([b, at, byte, how]) => {
      const a = [...b];
      const i = a.length === 0 ? 0 : at % a.length;
      if (how === "cut") return a.slice(0, i);
      if (how === "set" && a.length > 0) a[i] = byte;
      if (how === "insert") a.splice(i, 0, byte);
      return a;
    });

const wireInputs = fc.oneof(
  fieldsArb,
  fc.uint8Array({ maxLength: 40 }).map((b) => [...b]),
  mutate(requestInit(anyString).map(encodeRequest)),
  mutate(responseInit(anyString).map(encodeResponse)),
);

t.test(
  "property: on any input, decoding agrees with the reference (same value, or both throw)",
  async (t) => {
    let threw = 0;
    let decoded = 0;
    fc.assert(
      fc.property(wireInputs, fc.boolean(), (bytes, asBuffer) => {
        const input = asBuffer ? Buffer.from(bytes) : new Uint8Array(bytes);
        const ours = attempt(() => normRequest(decodeRequest(input)));
        const theirs = attempt(() => normRequest(ref.decodeRequest(input)));
        const oursR = attempt(() => normResponse(decodeResponse(input)));
        const theirsR = attempt(() => normResponse(ref.decodeResponse(input)));
        threw += Number(!ours.ok) + Number(!oursR.ok);
        decoded += Number(ours.ok) + Number(oursR.ok);
        return JSON.stringify([ours, oursR]) === JSON.stringify([theirs, theirsR]);
      }),
      { numRuns: 5000 },
    );
    // Both outcomes must be well represented for the comparison to mean something.
    t.ok(threw > 1000, `malformed: ${threw}`);
    t.ok(decoded > 1000, `well-formed: ${decoded}`);
  },
);

t.test("nested groups in unknown fields: the reference's depth limit, at every level", async (t) => {
  const len = (b: number[]) => [...varintBytes(BigInt(b.length)), ...b];
  for (let d = 96; d <= 103; d++) {
    const groups = [...Array(d).fill(0x33), ...Array(d).fill(0x34)]; // field 6 SGROUP … EGROUP
    const cases: [string, number[], (b: Uint8Array) => unknown, (b: Uint8Array) => unknown][] = [
      ["Request", groups, decodeRequest, ref.decodeRequest],
      ["KeyValue", [0x2a, ...len(groups)], decodeRequest, ref.decodeRequest],
      ["Response", groups, decodeResponse, ref.decodeResponse],
      ["Status", [0x0a, ...len(groups)], decodeResponse, ref.decodeResponse],
      ["Any", [0x0a, ...len([0x1a, ...len(groups)])], decodeResponse, ref.decodeResponse],
    ];
    for (const [where, bytes, ours, theirs] of cases) {
      const input = Buffer.from(bytes);
      t.equal(attempt(() => ours(input)).ok, attempt(() => theirs(input)).ok, `${where}, depth ${d}`);
    }
  }
});

/** Where the top-level fields of a well-formed encoding end (an independent walker). */
function fieldBoundaries(b: Uint8Array): Set<number> {
  const out = new Set([0]);
  let pos = 0;
  const varint = () => {
    let v = 0;
    for (let shift = 0; pos < b.length; shift += 7) {
      const x = b[pos++] as number;
      v += (x & 0x7f) * 2 ** shift;
      if (x < 0x80) return v;
    }
    throw new Error("not a well-formed encoding");
  };
  while (pos < b.length) {
    const tag = varint();
    if ((tag & 7) === 2) {
      const len = varint();
      pos += len;
    } else {
      varint();
    }
    out.add(pos);
  }
  return out;
}

t.test("property: a truncated message throws unless cut exactly between fields", async (t) => {
  fc.assert(
    fc.property(requestInit(validString), responseInit(validString), (reqInit, resInit) => {
      for (const [bytes, decode, norm] of [
        [encodeRequest(reqInit), decodeRequest, normRequest],
        [encodeResponse(resInit), decodeResponse, normResponse],
      ] as const) {
        const full = norm(decode(bytes) as Request & Response);
        const boundaries = fieldBoundaries(bytes);
        for (let cut = 0; cut < bytes.length; cut++) {
          const got = attempt(() => norm(decode(bytes.subarray(0, cut)) as Request & Response));
          if (got.ok !== boundaries.has(cut)) return false;
          if (!got.ok) continue;
          // Cut between fields: every field read is whole (or absent), never a shortened value.
          for (const [k, v] of Object.entries(got.value as Record<string, unknown>)) {
            const f = (full as Record<string, unknown>)[k];
            const whole = JSON.stringify(v) === JSON.stringify(f);
            const absent = v === "" || v === 0 || v === false || (Array.isArray(v) && v.length === 0);
            const prefix =
              Array.isArray(v) &&
              Array.isArray(f) &&
              JSON.stringify(v) === JSON.stringify(f.slice(0, v.length));
            if (!whole && !absent && !prefix) return false;
          }
        }
      }
      return true;
    }),
    { numRuns: 300 },
  );
  t.pass();
});

t.test("no file of this package loads protobufjs's reflection build", async (t) => {
  const dir = fileURLToPath(new URL(".", import.meta.url));
  const seen: string[] = [];
  for (const f of readdirSync(dir)) {
    if (!/\.(js|ts)$/.test(f) || f.endsWith(".d.ts") || /\.test\.(js|ts)$/.test(f)) continue;
    const src = readFileSync(`${dir}/${f}`, "utf8");
    for (const m of src.matchAll(/(?:from\s*|import\s*\(\s*|require\s*\(\s*)["'](protobufjs[^"']*)["']/g)) {
      seen.push(`${f}: ${m[1]}`);
      t.equal(m[1], "protobufjs/minimal.js", `${f} imports ${m[1]}`);
    }
  }
  t.ok(
    seen.some((s) => s.startsWith("messages.")),
    "messages uses protobufjs/minimal.js",
  );
});
