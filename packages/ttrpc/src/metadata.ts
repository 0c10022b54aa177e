// Request metadata: ttrpc carries it as repeated KeyValue (field 5 of Request). Go ttrpc's MD
// lowercases keys and allows several values per key; we do the same so that a value set by a Go
// client under "Foo" is found here under "foo", and vice versa.

import type { KeyValue } from "./messages.js";

/** Metadata as a caller gives it: one value or several per key. */
export type Metadata = Record<string, string | string[]>;

/** Metadata as a handler sees it: lowercased keys, every value a list. */
export type IncomingMetadata = Record<string, string[]>;

const NO_KEY_VALUES: KeyValue[] = [];

export function toKeyValues(md: Metadata | undefined): KeyValue[] {
  if (md === undefined) return NO_KEY_VALUES;
  const out: KeyValue[] = [];
  for (const key of Object.keys(md)) {
    const k = key.toLowerCase();
    const v = md[key]!;
    if (typeof v === "string") out.push({ key: k, value: v });
    else for (const value of v) out.push({ key: k, value });
  }
  return out;
}

const EMPTY: IncomingMetadata = Object.freeze(Object.create(null)) as IncomingMetadata;

export function fromKeyValues(kvs: readonly KeyValue[]): IncomingMetadata {
  if (kvs.length === 0) return EMPTY;
  // No prototype: a key named "__proto__" or "constructor" is just a key.
  const md = Object.create(null) as IncomingMetadata;
  for (const { key, value } of kvs) {
    const k = key.toLowerCase();
    const list = md[k];
    if (list === undefined) md[k] = [value];
    else list.push(value);
  }
  return md;
}
