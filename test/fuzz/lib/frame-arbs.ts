// fast-check arbitraries for hostile ttrpc byte streams: sequences of operations (well-formed
// requests, data on streams, frames with any id/type/flags/declared length, oversized headers,
// undecodable envelopes, raw garbage), how the bytes are cut into writes, and whether the
// sender gives up in the middle. Ids are chosen by role (next, reused, even, zero, max, an
// earlier stream, random) and resolved while the bytes are built, so shrinking keeps the roles.
import { encodeRequest, type KeyValue } from "@tsrunc/ttrpc";
import fc from "fast-check";
import { F_NO_DATA, F_REMOTE_CLOSED, F_REMOTE_OPEN, MAX_DATA, rawFrame, T_DATA, T_REQUEST } from "./wire.js";

export interface CallSpec {
  service: string;
  method: string;
  payload?: Uint8Array | undefined;
}

export type IdRole = "next" | "skip" | "reuse" | "earlier" | "even" | "zero" | "max" | "random";

export type Op =
  | {
      op: "req";
      id: IdRole;
      call: CallSpec;
      flags: number;
      timeoutNano?: number;
      metadata?: KeyValue[];
      raw?: number;
    }
  | { op: "data"; id: IdRole; flags: number; data: Uint8Array }
  | {
      op: "frame";
      id: IdRole;
      type: number;
      flags: number;
      data: Uint8Array;
      declared?: number;
      raw?: number;
    }
  | { op: "oversize"; id: IdRole; type: number; extra: number; body: boolean }
  | { op: "envelope"; id: IdRole; bytes: Uint8Array }
  | { op: "garbage"; bytes: Uint8Array };

export interface Case {
  ops: Op[];
  /** Cut points as fractions of the total length (0..1). */
  cuts: number[];
  /** Send byte by byte (the first 512 bytes; the rest in one write). */
  byteAtATime: boolean;
  /** Stop after this fraction of the bytes (undefined: send everything). */
  abandonAt?: number | undefined;
  /** Wait this long between writes (0: one event-loop turn). */
  gapMs: number;
}

const u32 = fc.nat({ max: 0xffffffff });

export const idRole: fc.Arbitrary<IdRole> = fc.oneof(
  { weight: 12, arbitrary: fc.constant<IdRole>("next") },
  { weight: 2, arbitrary: fc.constant<IdRole>("skip") },
  { weight: 2, arbitrary: fc.constant<IdRole>("reuse") },
  { weight: 2, arbitrary: fc.constant<IdRole>("earlier") },
  { weight: 1, arbitrary: fc.constant<IdRole>("even") },
  { weight: 1, arbitrary: fc.constant<IdRole>("zero") },
  { weight: 1, arbitrary: fc.constant<IdRole>("max") },
  { weight: 1, arbitrary: fc.constant<IdRole>("random") },
);

const dataIdRole: fc.Arbitrary<IdRole> = fc.oneof(
  { weight: 8, arbitrary: fc.constant<IdRole>("reuse") },
  { weight: 4, arbitrary: fc.constant<IdRole>("earlier") },
  { weight: 1, arbitrary: fc.constant<IdRole>("next") },
  { weight: 1, arbitrary: fc.constant<IdRole>("even") },
  { weight: 1, arbitrary: fc.constant<IdRole>("zero") },
  { weight: 1, arbitrary: fc.constant<IdRole>("random") },
);

const flags = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(0, F_REMOTE_CLOSED, F_REMOTE_OPEN, F_NO_DATA | F_REMOTE_CLOSED) },
  { weight: 1, arbitrary: fc.nat({ max: 255 }) },
);

const smallBytes = fc.uint8Array({ maxLength: 64 });

const timeout = fc.oneof(
  { weight: 8, arbitrary: fc.constant(0) },
  { weight: 1, arbitrary: fc.integer({ min: -1e12, max: 1e15 }) },
);

const metadata: fc.Arbitrary<KeyValue[]> = fc.array(
  fc.record({
    key: fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom("__proto__", "constructor", "X-Id", "")),
    value: fc.string({ maxLength: 24, unit: "grapheme" }),
  }),
  { maxLength: 4 },
);

export function opArb(calls: fc.Arbitrary<CallSpec>): fc.Arbitrary<Op> {
  return fc.oneof(
    {
      weight: 10,
      arbitrary: fc.record(
        {
          op: fc.constant("req" as const),
          id: idRole,
          call: calls,
          flags,
          timeoutNano: timeout,
          metadata,
          raw: u32,
        },
        { requiredKeys: ["op", "id", "call", "flags"] },
      ),
    },
    {
      weight: 6,
      arbitrary: fc.record({ op: fc.constant("data" as const), id: dataIdRole, flags, data: smallBytes }),
    },
    {
      weight: 3,
      arbitrary: fc.record(
        {
          op: fc.constant("frame" as const),
          id: idRole,
          type: fc.oneof(
            { weight: 3, arbitrary: fc.constantFrom(1, 2, 3) },
            { weight: 1, arbitrary: fc.nat(255) },
          ),
          flags: fc.nat(255),
          data: smallBytes,
          declared: fc.oneof(fc.nat(96), fc.constantFrom(0xffffffff, MAX_DATA, MAX_DATA + 1)),
          raw: u32,
        },
        { requiredKeys: ["op", "id", "type", "flags", "data"] },
      ),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant("oversize" as const),
        id: idRole,
        type: fc.constantFrom(1, 2, 3),
        extra: fc.oneof(fc.nat(16), fc.constant(0xffffffff - MAX_DATA)),
        body: fc.boolean(),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ op: fc.constant("envelope" as const), id: idRole, bytes: smallBytes }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("garbage" as const), bytes: smallBytes }) },
  );
}

export function caseArb(calls: fc.Arbitrary<CallSpec>, maxOps = 12): fc.Arbitrary<Case> {
  return fc.record(
    {
      ops: fc.array(opArb(calls), { minLength: 1, maxLength: maxOps }),
      cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }),
      byteAtATime: fc.oneof(
        { weight: 1, arbitrary: fc.constant(true) },
        { weight: 5, arbitrary: fc.constant(false) },
      ),
      abandonAt: fc.option(fc.double({ min: 0, max: 1, noNaN: true }), { freq: 6, nil: undefined }),
      gapMs: fc.oneof({ weight: 9, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.nat(3) }),
    },
    { requiredKeys: ["ops", "cuts", "byteAtATime", "gapMs"] },
  );
}

/** The bytes of a case, with every id role resolved. */
export function buildBytes(ops: readonly Op[]): Buffer {
  const parts: Buffer[] = [];
  let last = 0;
  const used: number[] = [];
  const resolve = (role: IdRole, raw = 0x7ffffff1): number => {
    switch (role) {
      case "next":
        return last + 2 > 0xffffffff ? 0xffffffff : last === 0 ? 1 : last + 2;
      case "skip":
        return Math.min(0xffffffff, (last | 1) + 2 * (1 + (raw % 1000)));
      case "reuse":
        return last === 0 ? 1 : last;
      case "earlier":
        return used.length ? used[raw % used.length]! : 1;
      case "even":
        return (raw & ~1) >>> 0 || 2;
      case "zero":
        return 0;
      case "max":
        return 0xffffffff;
      case "random":
        return raw >>> 0;
    }
  };
  const note = (id: number) => {
    if (id % 2 === 1 && id > last) last = id;
    used.push(id);
  };
  for (const o of ops) {
    switch (o.op) {
      case "req": {
        const id = resolve(o.id, o.raw);
        const env = encodeRequest({
          service: o.call.service,
          method: o.call.method,
          payload: o.call.payload,
          ...(o.timeoutNano ? { timeoutNano: o.timeoutNano } : {}),
          ...(o.metadata?.length ? { metadata: o.metadata } : {}),
        });
        parts.push(rawFrame(id, T_REQUEST, o.flags, env));
        note(id);
        break;
      }
      case "data": {
        parts.push(rawFrame(resolve(o.id), T_DATA, o.flags, o.data));
        break;
      }
      case "frame": {
        const id = resolve(o.id, o.raw);
        parts.push(rawFrame(id, o.type, o.flags, o.data, o.declared ?? o.data.length));
        if (o.type === T_REQUEST) note(id);
        break;
      }
      case "oversize": {
        const length = MAX_DATA + 1 + o.extra;
        const id = resolve(o.id);
        parts.push(rawFrame(id, o.type, 0, new Uint8Array(0), length));
        if (o.body && length <= MAX_DATA + 64) parts.push(Buffer.alloc(length, 0x5a));
        break;
      }
      case "envelope": {
        const id = resolve(o.id);
        parts.push(rawFrame(id, T_REQUEST, 0, o.bytes));
        note(id);
        break;
      }
      case "garbage":
        parts.push(Buffer.from(o.bytes));
        break;
    }
  }
  return Buffer.concat(parts);
}

/** The writes of a case: the bytes it sends (maybe abandoned early) cut into chunks. */
export function chunksOf(c: Case): { bytes: Buffer; chunks: Uint8Array[] } {
  let bytes = buildBytes(c.ops);
  if (c.abandonAt !== undefined) bytes = bytes.subarray(0, Math.floor(bytes.length * c.abandonAt));
  if (c.byteAtATime) {
    const head = Math.min(bytes.length, 512);
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < head; i++) chunks.push(bytes.subarray(i, i + 1));
    if (head < bytes.length) chunks.push(bytes.subarray(head));
    return { bytes, chunks };
  }
  const cuts = c.cuts.map((f) => Math.floor(f * bytes.length));
  const chunks: Uint8Array[] = [];
  let at = 0;
  for (const p of [...new Set(cuts)].sort((a, b) => a - b)) {
    if (p > at) chunks.push(bytes.subarray(at, p));
    at = Math.max(at, p);
  }
  if (at < bytes.length || chunks.length === 0) chunks.push(bytes.subarray(at));
  return { bytes, chunks };
}

/** A case as JSON (Uint8Arrays and Buffers as base64), for regression files and failure messages. */
export function caseToJson(c: unknown): unknown {
  if (c instanceof Uint8Array) return { $b64: Buffer.from(c).toString("base64") };
  if (Array.isArray(c)) return c.map(caseToJson);
  if (c && typeof c === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(c)) if (v !== undefined) out[k] = caseToJson(v);
    return out;
  }
  return c;
}

export function caseFromJson<T>(j: unknown): T {
  if (Array.isArray(j)) return j.map((v) => caseFromJson(v)) as T;
  if (j && typeof j === "object") {
    const o = j as Record<string, unknown>;
    if (typeof o.$b64 === "string") return new Uint8Array(Buffer.from(o.$b64, "base64")) as T;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o)) out[k] = caseFromJson(v);
    return out as T;
  }
  return j as T;
}
