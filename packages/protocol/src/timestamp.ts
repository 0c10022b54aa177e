// google.protobuf.Timestamp helpers. containerd's Go types keep every timestamp as a time.Time
// value, so "no time" travels as Go's zero time (year 1), not as an absent field or the epoch.

import type { google_protobuf } from "./generated/shim.js";
import { GO_ZERO_TIME } from "./runtime.js";

export { GO_ZERO_TIME };

type Timestamp = google_protobuf.Timestamp;

/** True for Go's zero time.Time (what containerd sends for "not exited yet"). */
export function isGoZeroTime(ts: Timestamp | undefined | null): boolean {
  return ts != null && ts.seconds === GO_ZERO_TIME.seconds && ts.nanos === 0;
}

/** A Timestamp from milliseconds since the epoch (fractions of a millisecond are kept). */
export function timestampFromMillis(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  let nanos = Math.round((ms - seconds * 1000) * 1e6);
  if (nanos >= 1e9) nanos = 999_999_999;
  return { seconds, nanos };
}

export function timestampFromDate(date: Date): Timestamp {
  return timestampFromMillis(date.getTime());
}

/** Now, from the wall clock (millisecond resolution). */
export function timestampNow(): Timestamp {
  return timestampFromMillis(Date.now());
}

/** Milliseconds since the epoch (nanoseconds below a millisecond become a fraction). */
export function timestampToMillis(ts: Timestamp): number {
  return ts.seconds * 1000 + ts.nanos / 1e6;
}

/** A Date, or undefined for Go's zero time. */
export function timestampToDate(ts: Timestamp | undefined | null): Date | undefined {
  if (ts == null || isGoZeroTime(ts)) return undefined;
  return new Date(timestampToMillis(ts));
}
