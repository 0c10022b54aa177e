import fc from "fast-check";
import t from "tap";
import { decodeRequest, decodeResponse, encodeRequest, encodeResponse } from "./messages.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

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

t.test("payload presence: an empty payload is never on the wire", async (t) => {
  t.equal(decodeRequest(encodeRequest({ service: "s", method: "m" })).hasPayload, false);
  // proto3 does not write an empty bytes field (neither does Go), so an empty payload is absent…
  t.equal(hex(encodeRequest({ service: "s", method: "m", payload: new Uint8Array(0) })), "0a017312016d");
  // …and an explicit zero-length field 3 decodes as absent too (proto3 implicit presence).
  const explicit = decodeRequest(Buffer.from("0a017312016d1a00", "hex"));
  t.equal(explicit.hasPayload, false);
  t.equal(explicit.payload.length, 0);
  t.equal(decodeRequest(Buffer.from("0a017312016d1a0100", "hex")).hasPayload, true);
});

t.test("large timeouts survive int64 (beyond 2^32 ns)", async (t) => {
  const ns = 3_600_000_000_000; // one hour
  t.equal(decodeRequest(encodeRequest({ service: "", method: "", timeoutNano: ns })).timeoutNano, ns);
});

t.test("Response: OK is an absent status; errors carry code, message and details", async (t) => {
  const ok = encodeResponse({ payload: Buffer.from("hi") });
  t.equal(hex(ok), "12026869");
  const okr = decodeResponse(ok);
  t.equal(okr.status.code, 0);
  t.equal(Buffer.from(okr.payload).toString(), "hi");
  const err = encodeResponse({
    status: { code: 5, message: "nope", details: [{ typeUrl: "t/x", value: new Uint8Array([9]) }] },
  });
  // 1:{1:5 2:"nope" 3:{1:"t/x" 2:[09]}}
  t.equal(hex(err), "0a1208051204 6e6f7065 1a08 0a03742f78 120109".replace(/ /g, ""));
  const r = decodeResponse(err);
  t.same(
    { code: r.status.code, message: r.status.message },
    {
      code: 5,
      message: "nope",
    },
  );
  t.same(
    r.status.details.map((d) => ({ typeUrl: d.typeUrl, value: [...d.value] })),
    [{ typeUrl: "t/x", value: [9] }],
  );
  t.equal(r.payload.length, 0);
});

t.test("undecodable bytes throw", async (t) => {
  t.throws(() => decodeRequest(Buffer.from([0x0a, 0x05, 0x61])));
  t.throws(() => decodeResponse(Buffer.from([0xff, 0xff, 0xff])));
});

t.test("property: Request round-trips", async (t) => {
  fc.assert(
    fc.property(
      fc.string(),
      fc.string(),
      fc.uint8Array({ maxLength: 200 }),
      fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      fc.array(fc.record({ key: fc.string(), value: fc.string() }), { maxLength: 5 }),
      (service, method, payload, timeoutNano, metadata) => {
        const r = decodeRequest(encodeRequest({ service, method, payload, timeoutNano, metadata }));
        return (
          r.service === service &&
          r.method === method &&
          Buffer.from(r.payload).equals(Buffer.from(payload)) &&
          r.timeoutNano === timeoutNano &&
          JSON.stringify(r.metadata.map((m) => [m.key, m.value])) ===
            JSON.stringify(metadata.map((m) => [m.key, m.value]))
        );
      },
    ),
    { numRuns: 500 },
  );
  t.pass();
});

t.test("property: Response round-trips", async (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 16 }),
      fc.string(),
      fc.uint8Array({ maxLength: 200 }),
      (code, message, payload) => {
        const r = decodeResponse(encodeResponse({ status: { code, message }, payload }));
        return (
          r.status.code === code && r.status.message === message && Buffer.from(r.payload).equals(payload)
        );
      },
    ),
    { numRuns: 500 },
  );
  t.pass();
});
