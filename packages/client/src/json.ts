// Protocol messages made printable as JSON: bytes become base64, 64-bit integers become numbers
// (strings when a number would lose precision), Timestamps stay {seconds, nanos} unless the
// caller converts them (see timestampJson).

import { isGoZeroTime, type Timestamp, timestampToDate } from "@tsrunc/protocol";

/** A deep copy of `v` that JSON.stringify can write without losing anything silently. */
export function toPlain(v: unknown): unknown {
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64");
  if (typeof v === "bigint") {
    return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER)
      ? Number(v)
      : String(v);
  }
  if (Array.isArray(v)) return v.map(toPlain);
  if (v !== null && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (x !== undefined) out[k] = toPlain(x);
    }
    return out;
  }
  return v;
}

/** An RFC 3339 string for a Timestamp, or undefined for none (Go's zero time included). */
export function timestampJson(ts: Timestamp | undefined | null): string | undefined {
  if (ts == null || isGoZeroTime(ts)) return undefined;
  return timestampToDate(ts)?.toISOString();
}
