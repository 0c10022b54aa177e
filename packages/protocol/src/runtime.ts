// What the generated code (src/generated/*.ts) stands on: protobufjs's minimal Reader and
// Writer for the wire primitives, plus the few pieces protobufjs does not do the way we want
// (64-bit integers as number/bigint without Long objects, bounds-checked nested lengths, maps
// safe against "__proto__" keys). Nothing here knows any schema.

import protobuf from "protobufjs/minimal.js";

export type Reader = protobuf.Reader;
export type Writer = protobuf.Writer;
const ReaderImpl = protobuf.Reader;
const WriterImpl = protobuf.Writer;

type Scalar = string | number | boolean | bigint | Uint8Array | null | undefined;
type InitOf<V> = V extends Scalar
  ? V
  : V extends readonly (infer U)[]
    ? InitOf<U>[]
    : V extends object
      ? { [K in keyof V]?: InitOf<V[K]> }
      : V;

/** A message with every field optional, at every depth: what `create` and `encode` accept. */
export type MessageInit<T> = { [K in keyof T]?: InitOf<T[K]> };

/**
 * A generated message type: its proto name, a factory, and its codec. It is a ttrpc
 * `MessageCodec<T>` (encode accepts more than T: any field may be left out).
 */
export interface MessageType<T> {
  /** The fully qualified proto name, e.g. "containerd.events.TaskExit" (also its Any type URL). */
  readonly typeName: string;
  /** A complete message: the given fields, proto3 defaults for the rest. */
  create(init?: MessageInit<T>): T;
  /** Missing fields encode as their defaults (that is, not at all). */
  encode(message: MessageInit<T>): Uint8Array;
  /** Throws on malformed input; skips fields it does not know. */
  decode(bytes: Uint8Array): T;
  /** Low level, for generated code: writes the fields (no tag, no length) to `w`. */
  encodeTo(message: MessageInit<T>, w: Writer): void;
  /** Low level, for generated code: reads fields from `r` up to offset `end`. */
  decodeFrom(r: Reader, end: number): T;
}

export function messageType<T>(
  typeName: string,
  create: (init?: MessageInit<T>) => T,
  encodeTo: (message: MessageInit<T>, w: Writer) => void,
  decodeFrom: (r: Reader, end: number) => T,
): MessageType<T> {
  return {
    typeName,
    create,
    encodeTo,
    decodeFrom,
    encode(message: MessageInit<T>): Uint8Array {
      const w = WriterImpl.create();
      encodeTo(message, w);
      return w.finish();
    },
    decode(bytes: Uint8Array): T {
      const r = ReaderImpl.create(bytes);
      return decodeFrom(r, r.len);
    },
  };
}

/** Reads a length prefix and returns where the nested field ends; it must fit inside `end`. */
export function subEnd(r: Reader, end: number): number {
  const len = r.uint32();
  const e = r.pos + len;
  if (e > end) throw new RangeError(`nested length ${len} at offset ${r.pos} overruns its enclosing message`);
  return e;
}

/** After a nested message or packed field: the reader must stand exactly at its end. */
export function checkEnd(r: Reader, end: number): void {
  if (r.pos !== end) throw new RangeError(`field overruns its length (at ${r.pos}, expected ${end})`);
}

/** Skips a field this schema does not know (any wire type, groups included). */
export function skip(r: Reader, tag: number): void {
  r.skipType(tag & 7, 0, tag >>> 3);
}

/** Sets a map entry as an own property, even for the key "__proto__". */
export function setEntry<V>(map: Record<string, V>, key: string, value: V): void {
  if (key === "__proto__") {
    Object.defineProperty(map, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    map[key] = value;
  }
}

/** Copies a map, mapping its values (for map<string, Message> in `create`). */
export function mapValues<I, V>(map: Record<string, I>, f: (v: I) => V): Record<string, V> {
  const out: Record<string, V> = {};
  for (const k of Object.keys(map)) setEntry(out, k, f(map[k] as I));
  return out;
}

export function copyMap<V>(map: Record<string, V>): Record<string, V> {
  return mapValues(map, (v) => v);
}

export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

/** A bytes field: copied out of the input so that it never aliases the caller's buffer. */
export function readBytes(r: Reader): Uint8Array {
  const b = r.bytes();
  return b.length === 0 ? EMPTY_BYTES : new Uint8Array(b);
}

// 64-bit varints, read without Long objects: the low and high 32 bits land here.
let lo = 0;
let hi = 0;

function varint64(r: Reader): void {
  const buf = r.buf;
  const len = r.len;
  let pos = r.pos;
  let b = 0;
  lo = 0;
  hi = 0;
  for (let shift = 0; shift < 28; shift += 7) {
    if (pos >= len) throw new RangeError(`index out of range: ${pos} >= ${len}`);
    b = buf[pos++] as number;
    lo |= (b & 0x7f) << shift;
    if (b < 0x80) {
      r.pos = pos;
      lo >>>= 0;
      return;
    }
  }
  if (pos >= len) throw new RangeError(`index out of range: ${pos} >= ${len}`);
  b = buf[pos++] as number;
  lo = (lo | ((b & 0x7f) << 28)) >>> 0;
  hi = (b & 0x7f) >>> 4;
  if (b < 0x80) {
    r.pos = pos;
    return;
  }
  for (let shift = 3; shift < 32; shift += 7) {
    if (pos >= len) throw new RangeError(`index out of range: ${pos} >= ${len}`);
    b = buf[pos++] as number;
    hi |= (b & 0x7f) << shift;
    if (b < 0x80) {
      r.pos = pos;
      hi >>>= 0;
      return;
    }
  }
  throw new Error(`invalid varint encoding at offset ${r.pos}`);
}

const TWO_32 = 4294967296;

/** int64 as a number: exact up to ±2^53, which timestamps and sizes never leave. */
export function readInt64(r: Reader): number {
  varint64(r);
  if (hi & 0x80000000) {
    const nlo = (~lo + 1) >>> 0;
    let nhi = ~hi >>> 0;
    if (nlo === 0) nhi = (nhi + 1) >>> 0;
    return -(nhi * TWO_32 + nlo);
  }
  return hi * TWO_32 + lo;
}

/** uint64 as a bigint: exact over the whole range (cgroup limits reach 2^64-1). */
export function readUint64(r: Reader): bigint {
  varint64(r);
  if (hi === 0) return BigInt(lo);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

const MASK_32 = 0xffffffffn;

export function writeInt64(w: Writer, v: number | bigint): void {
  if (typeof v === "bigint") writeUint64(w, v);
  else w.int64(v);
}

export function writeUint64(w: Writer, v: bigint | number): void {
  if (typeof v === "number") {
    w.uint64(v);
    return;
  }
  const u = BigInt.asUintN(64, v);
  w.uint64({ low: Number(u & MASK_32), high: Number(u >> 32n), unsigned: true } as unknown as number);
}

/** Repeated varint fields are packed on the wire (proto3); the reader takes either form. */
export function readPacked<T>(r: Reader, end: number, out: T[], read: (r: Reader) => T): void {
  const e = subEnd(r, end);
  while (r.pos < e) out.push(read(r));
  checkEnd(r, e);
}

/**
 * Go's zero time.Time as a Timestamp: what a Go peer writes into a non-nullable timestamp that
 * holds no time (e.g. exited_at of a process still running), and what our decoder fills in for
 * such a field when it is absent.
 */
export const GO_ZERO_TIME: { readonly seconds: number; readonly nanos: number } = Object.freeze({
  seconds: -62135596800,
  nanos: 0,
});
