// The two envelope messages of ttrpc (github.com/containerd/ttrpc request.proto) and the
// google.rpc.Status they carry. Payloads inside are opaque bytes: what they mean is the business
// of the service descriptors (packages/protocol), never of ttrpc.
//
// Hand-written codecs on protobufjs/minimal's Reader and Writer, in the style of
// packages/protocol's generated code: int64 as number, unknown fields skipped, nested lengths
// bounds-checked, malformed input throws. (protobufjs's reflection build, used here before, put
// ~62 KB into the minified shim bundle and took ~10 ms and ~1.3 MB at start-up, mostly loading
// and compiling codecs for these five small messages.) What it wrote and read is still the
// reference: messages.test.ts checks both directions against it, on random and garbage input.
//
//   Request  {1 service string, 2 method string, 3 payload bytes, 4 timeout_nano int64,
//             5 metadata repeated KeyValue{1 key string, 2 value string}}
//   Response {1 status google.rpc.Status{1 code int32, 2 message string,
//             3 details repeated google.protobuf.Any{1 type_url string, 2 value bytes}},
//             2 payload bytes}

import protobuf from "protobufjs/minimal.js";
import type { StatusDetail } from "./status.js";

type Reader = protobuf.Reader;
const ReaderImpl = protobuf.Reader;
const WriterImpl = protobuf.Writer;
const utf8 = protobuf.util.utf8;

export interface KeyValue {
  key: string;
  value: string;
}

export interface Request {
  service: string;
  method: string;
  payload: Uint8Array;
  /** Nanoseconds; 0 means no deadline. */
  timeoutNano: number;
  metadata: KeyValue[];
  /**
   * Whether field 3 was on the wire. Go's server delivers a streaming-client request's payload
   * as the first message only when it is present. proto3 makes an empty bytes field absent
   * (Go's encoder never writes one, and an empty one on the wire decodes as absent), so this
   * is also length > 0.
   */
  hasPayload: boolean;
}

export interface Status {
  code: number;
  message: string;
  details: StatusDetail[];
}

export interface Response {
  status: Status;
  payload: Uint8Array;
}

export interface RequestInit {
  service: string;
  method: string;
  /** Omitted from the wire when undefined (streaming-client requests carry no payload). */
  payload?: Uint8Array | undefined;
  timeoutNano?: number;
  metadata?: KeyValue[];
}

export interface ResponseInit {
  /** Omitted (OK) when undefined. */
  status?: { code: number; message?: string; details?: StatusDetail[] } | undefined;
  payload?: Uint8Array | undefined;
}

// Tags: field number << 3 | wire type (0 varint, 2 length-delimited).
const T1_LEN = 10;
const T2_LEN = 18;
const T3_LEN = 26;
const T1_VARINT = 8;
const T4_VARINT = 32;
const T5_LEN = 42;

/** What an absent bytes field decodes to. Zero length, so nobody can write into it. */
const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

// ---------------------------------------------------------------------------------------------
// Encoding. proto3: fields at their default (empty string, empty bytes, 0) are not written;
// a present message field (status, each metadata entry, each detail) always is, even if empty.

export function encodeRequest(req: RequestInit): Uint8Array {
  const w = WriterImpl.create();
  if (req.service) w.uint32(T1_LEN).string(req.service);
  if (req.method) w.uint32(T2_LEN).string(req.method);
  const payload = req.payload;
  if (payload?.length) w.uint32(T3_LEN).bytes(payload);
  const timeout = req.timeoutNano;
  if (timeout != null && timeout !== 0) w.uint32(T4_VARINT).int64(timeout);
  const metadata = req.metadata;
  if (metadata != null) {
    for (let i = 0; i < metadata.length; i++) {
      const kv = metadata[i] as KeyValue;
      w.uint32(T5_LEN).fork();
      if (kv.key) w.uint32(T1_LEN).string(kv.key);
      if (kv.value) w.uint32(T2_LEN).string(kv.value);
      w.ldelim();
    }
  }
  return w.finish();
}

export function encodeResponse(res: ResponseInit): Uint8Array {
  const w = WriterImpl.create();
  const status = res.status;
  if (status != null) {
    w.uint32(T1_LEN).fork();
    if (status.code != null && status.code !== 0) w.uint32(T1_VARINT).int32(status.code);
    if (status.message) w.uint32(T2_LEN).string(status.message);
    const details = status.details;
    if (details != null) {
      for (let i = 0; i < details.length; i++) {
        const d = details[i] as StatusDetail;
        w.uint32(T3_LEN).fork();
        if (d.typeUrl) w.uint32(T1_LEN).string(d.typeUrl);
        if (d.value?.length) w.uint32(T2_LEN).bytes(d.value);
        w.ldelim();
      }
    }
    w.ldelim();
  }
  const payload = res.payload;
  if (payload?.length) w.uint32(T2_LEN).bytes(payload);
  return w.finish();
}

// ---------------------------------------------------------------------------------------------
// Decoding. Every read is bounded by `r.len`, which a nested message narrows to its own end for
// as long as it is being read; so a field can never run past the message that holds it, and a
// truncated input throws instead of yielding a short string or payload.

/** Thrown for every malformed input, so that callers see which envelope failed and where. */
function malformed(what: string, detail: string, cause?: unknown): Error {
  return new Error(`ttrpc: malformed ${what}: ${detail}`, cause === undefined ? undefined : { cause });
}

/** A fault found by the code below, which already says which field and where. */
class FieldError extends RangeError {}

/** Reads a length prefix; returns where that field ends, which must lie inside the message. */
function fieldEnd(r: Reader, field: string): number {
  let len: number;
  try {
    len = r.size();
  } catch (err) {
    throw new FieldError(`field ${field}: length truncated or invalid at offset ${r.pos}`, { cause: err });
  }
  const end = r.pos + len;
  if (end > r.len) {
    throw new FieldError(
      `field ${field}: length ${len} at offset ${r.pos} overruns its message by ${end - r.len}`,
    );
  }
  return end;
}

/** proto3 strings must be valid UTF-8 (Go rejects them otherwise, and so did protobufjs). */
function readString(r: Reader, field: string): string {
  const end = fieldEnd(r, field);
  const start = r.pos;
  r.pos = end;
  if (start === end) return "";
  try {
    return utf8.readStrict(r.buf, start, end);
  } catch (err) {
    throw new FieldError(`field ${field}: invalid UTF-8 at offset ${start}`, { cause: err });
  }
}

/** A view into the input (as protobufjs's reader gives it): payloads are not copied. */
function readBytes(r: Reader, field: string): Uint8Array {
  const end = fieldEnd(r, field);
  const start = r.pos;
  r.pos = end;
  return start === end ? EMPTY_BYTES : r.buf.subarray(start, end);
}

const TWO_32 = 4294967296;

/**
 * int64 as a number, without Long objects: the low 32 bits unsigned plus the high 32 bits
 * signed times 2^32 (exact up to ±2^53; beyond, rounded once, as Long.toNumber rounds).
 * Like protobufjs: at most 10 bytes, bits past the 64th ignored.
 */
function readInt64(r: Reader, field: string): number {
  const buf = r.buf;
  const len = r.len;
  let pos = r.pos;
  let lo = 0;
  let hi = 0;
  let b = 0;
  for (let shift = 0; shift < 28; shift += 7) {
    if (pos >= len) throw new FieldError(`field ${field}: varint truncated at offset ${pos}`);
    b = buf[pos++] as number;
    lo |= (b & 0x7f) << shift;
    if (b < 0x80) {
      r.pos = pos;
      return lo; // < 2^28
    }
  }
  if (pos >= len) throw new FieldError(`field ${field}: varint truncated at offset ${pos}`);
  b = buf[pos++] as number;
  lo |= (b & 0x7f) << 28;
  hi = (b & 0x7f) >>> 4;
  if (b >= 0x80) {
    for (let shift = 3; ; shift += 7) {
      if (shift > 31) throw new FieldError(`field ${field}: varint longer than 10 bytes at offset ${r.pos}`);
      if (pos >= len) throw new FieldError(`field ${field}: varint truncated at offset ${pos}`);
      b = buf[pos++] as number;
      hi |= (b & 0x7f) << shift;
      if (b < 0x80) break;
    }
  }
  r.pos = pos;
  return hi * TWO_32 + (lo >>> 0);
}

/**
 * Enters a nested message (its length prefix is at r.pos): narrows r.len to its end and
 * returns the enclosing limit, which `leave` restores.
 */
function enter(r: Reader, field: string): number {
  const outer = r.len;
  r.len = fieldEnd(r, field);
  return outer;
}

function leave(r: Reader, outer: number): void {
  // Every read is bounded by r.len, so the nested loop stops exactly at its end.
  r.len = outer;
}

// Unknown fields, and known field numbers with an unexpected wire type, are skipped (as
// protobufjs and Go do). `depth` is the nesting depth, for protobufjs's group recursion limit.
function skip(r: Reader, tag: number, depth: number): void {
  r.skipType(tag & 7, depth, tag >>> 3);
}

function readKeyValue(r: Reader): KeyValue {
  const outer = enter(r, "metadata");
  let key = "";
  let value = "";
  while (r.pos < r.len) {
    const t = r.tag();
    switch (t) {
      case T1_LEN:
        key = readString(r, "metadata.key");
        continue;
      case T2_LEN:
        value = readString(r, "metadata.value");
        continue;
    }
    skip(r, t, 1);
  }
  leave(r, outer);
  return { key, value };
}

function readRequest(r: Reader): Request {
  let service = "";
  let method = "";
  let payload = EMPTY_BYTES;
  let timeoutNano = 0;
  const metadata: KeyValue[] = [];
  while (r.pos < r.len) {
    const t = r.tag();
    switch (t) {
      case T1_LEN:
        service = readString(r, "service");
        continue;
      case T2_LEN:
        method = readString(r, "method");
        continue;
      case T3_LEN:
        payload = readBytes(r, "payload");
        continue;
      case T4_VARINT:
        timeoutNano = readInt64(r, "timeout_nano");
        continue;
      case T5_LEN:
        metadata.push(readKeyValue(r));
        continue;
    }
    skip(r, t, 0);
  }
  return { service, method, payload, timeoutNano, metadata, hasPayload: payload.length > 0 };
}

/** Throws (an Error saying what and where) when the bytes are not a Request. */
export function decodeRequest(bytes: Uint8Array): Request {
  let r: Reader | undefined;
  try {
    r = ReaderImpl.create(bytes);
    return readRequest(r);
  } catch (err) {
    throw malformed("Request", describe(err, r), err);
  }
}

function readAny(r: Reader): StatusDetail {
  const outer = enter(r, "status.details");
  let typeUrl = "";
  let value = EMPTY_BYTES;
  while (r.pos < r.len) {
    const t = r.tag();
    switch (t) {
      case T1_LEN:
        typeUrl = readString(r, "status.details.type_url");
        continue;
      case T2_LEN:
        value = readBytes(r, "status.details.value");
        continue;
    }
    skip(r, t, 2);
  }
  leave(r, outer);
  return { typeUrl, value };
}

/** A status field seen twice merges, as protobuf says: scalars last-wins, details appended. */
function readStatus(r: Reader, into: Status | undefined): Status {
  const outer = enter(r, "status");
  const status: Status = into ?? { code: 0, message: "", details: [] };
  while (r.pos < r.len) {
    const t = r.tag();
    switch (t) {
      case T1_VARINT:
        status.code = r.int32();
        continue;
      case T2_LEN:
        status.message = readString(r, "status.message");
        continue;
      case T3_LEN:
        status.details.push(readAny(r));
        continue;
    }
    skip(r, t, 1);
  }
  leave(r, outer);
  return status;
}

const OK_STATUS: Status = Object.freeze({ code: 0, message: "", details: [] }) as Status;

function readResponse(r: Reader): Response {
  let status: Status | undefined;
  let payload = EMPTY_BYTES;
  while (r.pos < r.len) {
    const t = r.tag();
    switch (t) {
      case T1_LEN:
        status = readStatus(r, status);
        continue;
      case T2_LEN:
        payload = readBytes(r, "payload");
        continue;
    }
    skip(r, t, 0);
  }
  return { status: status ?? OK_STATUS, payload };
}

/** Throws (an Error saying what and where) when the bytes are not a Response. */
export function decodeResponse(bytes: Uint8Array): Response {
  let r: Reader | undefined;
  try {
    r = ReaderImpl.create(bytes);
    return readResponse(r);
  } catch (err) {
    throw malformed("Response", describe(err, r), err);
  }
}

// protobufjs's own errors (bad varint or tag, field number 0, bad wire type, a skipped field
// running past the end) say little on their own; ours already name the field.
function describe(err: unknown, r: Reader | undefined): string {
  const msg = err instanceof Error ? err.message : String(err);
  if (r === undefined || err instanceof FieldError) return msg;
  return `${msg} (at offset ${r.pos} of ${r.buf.length} bytes)`;
}
