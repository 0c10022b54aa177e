// Parsers for runc's answers. Each throws a plain Error naming what was wrong; the driver turns
// that into a RuncError of kind "failed" (runc said something we cannot read).

import {
  type ContainerState,
  isRuncStatus,
  type RuncFeatures,
  type RuncStats,
  type RuncVersion,
} from "./runc-types.js";

function parseObject(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`${what}: not JSON: ${(err as Error).message}: ${JSON.stringify(text.slice(0, 200))}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`${what}: not a JSON object: ${JSON.stringify(text.slice(0, 200))}`);
  }
  return value as Record<string, unknown>;
}

function str(obj: Record<string, unknown>, key: string, what: string, required = true): string {
  const v = obj[key];
  if (typeof v === "string") return v;
  if (v === undefined || v === null) {
    if (!required) return "";
    throw new Error(`${what}: missing "${key}"`);
  }
  throw new Error(`${what}: "${key}" is not a string`);
}

/** `runc state ID`. */
export function parseState(text: string): ContainerState {
  const what = "runc state";
  const o = parseObject(text, what);
  const pid = o.pid;
  if (typeof pid !== "number" || !Number.isInteger(pid) || pid < 0) throw new Error(`${what}: bad "pid"`);
  const status = o.status;
  if (!isRuncStatus(status)) throw new Error(`${what}: unknown status ${JSON.stringify(status)}`);
  const annotations: Record<string, string> = {};
  if (typeof o.annotations === "object" && o.annotations !== null) {
    for (const [k, v] of Object.entries(o.annotations)) if (typeof v === "string") annotations[k] = v;
  }
  return {
    ociVersion: str(o, "ociVersion", what, false),
    id: str(o, "id", what),
    pid,
    status,
    bundle: str(o, "bundle", what),
    rootfs: str(o, "rootfs", what, false),
    created: str(o, "created", what, false),
    owner: str(o, "owner", what, false),
    annotations,
  };
}

/** `runc ps --format json ID`: a JSON array of pids, or `null` when the container has none. */
export function parsePids(text: string): number[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`runc ps: not JSON: ${(err as Error).message}: ${JSON.stringify(text.slice(0, 200))}`);
  }
  if (value === null) return [];
  if (!Array.isArray(value) || !value.every((p) => typeof p === "number" && Number.isInteger(p) && p > 0)) {
    throw new Error(`runc ps: not an array of pids: ${JSON.stringify(text.slice(0, 200))}`);
  }
  return value as number[];
}

/** `runc events --stats ID`: one {"type":"stats","id":…,"data":{…}} line; returns data. */
export function parseStats(text: string): RuncStats {
  const what = "runc events --stats";
  const line = text
    .split("\n")
    .map((l) => l.trim())
    .find((l) => l.startsWith("{"));
  if (line === undefined)
    throw new Error(`${what}: no event in output: ${JSON.stringify(text.slice(0, 200))}`);
  const o = parseObject(line, what);
  if (o.type !== "stats") throw new Error(`${what}: event type ${JSON.stringify(o.type)}, not "stats"`);
  const data = o.data;
  if (typeof data !== "object" || data === null || Array.isArray(data)) throw new Error(`${what}: no "data"`);
  return data as RuncStats;
}

/** `runc features`. */
export function parseFeatures(text: string): RuncFeatures {
  return parseObject(text, "runc features") as RuncFeatures;
}

/**
 * `runc --version`:
 *   runc version 1.1.5+ds1
 *   commit: 1.1.5+ds1-1+deb12u1
 *   spec: 1.0.2-dev
 *   go: go1.19.8
 *   libseccomp: 2.5.4
 */
export function parseVersion(text: string): RuncVersion {
  const lines = text.split("\n").map((l) => l.trim());
  const first = lines.find((l) => /^runc version /.test(l));
  if (first === undefined)
    throw new Error(`runc --version: no "runc version" line: ${JSON.stringify(text.slice(0, 200))}`);
  const out: RuncVersion = { version: first.slice("runc version ".length).trim() };
  for (const line of lines) {
    const m = /^(commit|spec|go|libseccomp):\s*(.+)$/.exec(line);
    if (m) out[m[1] as "commit" | "spec" | "go" | "libseccomp"] = m[2]!.trim();
  }
  return out;
}
