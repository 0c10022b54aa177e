// Parsers for what a person types for a container: `--mount` in ctr's syntax, `K=V` lists for
// --env and --label, and `--user UID[:GID]` (names resolved against the container's rootfs).
// All of them throw InvalidArgument TtrpcErrors with a message meant for that person.

import { readFileSync, realpathSync } from "node:fs";
import { isAbsolute, join, resolve, sep } from "node:path";
import { Code, TtrpcError } from "@tsrunc/ttrpc";

export interface OciMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

const invalid = (msg: string) => new TtrpcError(Code.InvalidArgument, msg);

/** Splits one CSV record (Go's encoding/csv rules: fields may be double-quoted, "" is a quote). */
export function splitCsv(line: string): string[] {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    let field = "";
    if (line[i] === '"') {
      i++;
      for (;;) {
        if (i >= line.length) throw invalid(`unterminated quote in ${JSON.stringify(line)}`);
        const c = line[i]!;
        if (c === '"') {
          if (line[i + 1] === '"') {
            field += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        field += c;
        i++;
      }
      if (i < line.length && line[i] !== ",")
        throw invalid(`extraneous text after quote in ${JSON.stringify(line)}`);
    } else {
      const end = line.indexOf(",", i);
      field = end < 0 ? line.slice(i) : line.slice(i, end);
      i = end < 0 ? line.length : end;
    }
    fields.push(field);
    if (i >= line.length) return fields;
    i++; // the comma
  }
}

/**
 * One `--mount` value as ctr reads it: `type=bind,src=/a,dst=/b,options=rbind:ro` (keys type,
 * source|src, destination|dst, options with ':' between options). The destination must be
 * absolute; a relative bind source is taken from the current directory.
 */
export function parseMountFlag(value: string, cwd: string = process.cwd()): OciMount {
  const m: OciMount = { destination: "" };
  for (const field of splitCsv(value)) {
    const eq = field.indexOf("=");
    if (eq < 0) throw invalid(`invalid mount ${JSON.stringify(value)}: expected key=value fields`);
    const key = field.slice(0, eq);
    const val = field.slice(eq + 1);
    switch (key) {
      case "type":
        m.type = val;
        break;
      case "source":
      case "src":
        m.source = val;
        break;
      case "destination":
      case "dst":
        m.destination = val;
        break;
      case "options":
        m.options = val.split(":");
        break;
      default:
        throw invalid(`invalid mount ${JSON.stringify(value)}: unknown key ${JSON.stringify(key)}`);
    }
  }
  if (m.destination === "") throw invalid(`invalid mount ${JSON.stringify(value)}: dst= is required`);
  if (!isAbsolute(m.destination)) {
    throw invalid(`invalid mount ${JSON.stringify(value)}: destination must be an absolute path`);
  }
  const isBind = m.type === "bind" || (m.options ?? []).some((o) => o === "bind" || o === "rbind");
  if (isBind) {
    if (m.source === undefined || m.source === "") {
      throw invalid(`invalid mount ${JSON.stringify(value)}: a bind mount needs src=`);
    }
    m.source = resolve(cwd, m.source);
  }
  return m;
}

/**
 * Environment as containerd merges it: each override replaces the variable of the same name
 * or is appended; a bare `NAME` (no '=') removes NAME.
 */
export function replaceOrAppendEnv(defaults: readonly string[], overrides: readonly string[]): string[] {
  const out: (string | undefined)[] = [...defaults];
  const index = new Map<string, number>();
  out.forEach((e, i) => {
    index.set(e!.split("=", 1)[0]!, i);
  });
  for (const v of overrides) {
    const eq = v.indexOf("=");
    if (eq < 0) {
      const i = index.get(v);
      if (i !== undefined) out[i] = undefined;
      continue;
    }
    const name = v.slice(0, eq);
    const i = index.get(name);
    if (i !== undefined && out[i] !== undefined) {
      out[i] = v;
    } else {
      index.set(name, out.length);
      out.push(v);
    }
  }
  return out.filter((e): e is string => e !== undefined);
}

/** `--env` values: each must be NAME=VALUE (or a bare NAME, which unsets it), NAME non-empty. */
export function checkEnv(values: readonly string[]): string[] {
  for (const v of values) {
    if (v.startsWith("=") || v === "" || v.includes("\0"))
      throw invalid(`invalid environment variable ${JSON.stringify(v)}`);
  }
  return [...values];
}

/** `K=V` pairs (labels, annotations): a pair without '=' gets an empty value, as ctr. */
export function parseKeyValues(values: readonly string[], what = "label"): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf("=");
    const key = eq < 0 ? v : v.slice(0, eq);
    if (key === "") throw invalid(`invalid ${what} ${JSON.stringify(v)}: empty key`);
    Object.defineProperty(out, key, {
      value: eq < 0 ? "" : v.slice(eq + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

export interface ParsedUser {
  user: string | number;
  group?: string | number;
}

const MAX_ID = 0xffffffff;

function idOrName(s: string, what: string, full: string): string | number {
  if (s === "") throw invalid(`invalid user ${JSON.stringify(full)}: empty ${what}`);
  if (/^[0-9]+$/.test(s)) {
    const n = Number(s);
    if (n > MAX_ID) throw invalid(`invalid user ${JSON.stringify(full)}: ${what} out of range`);
    return n;
  }
  if (!/^[A-Za-z_][A-Za-z0-9_.-]*\$?$/.test(s)) throw invalid(`invalid user ${JSON.stringify(full)}`);
  return s;
}

/** `--user` as `UID[:GID]` (names are accepted in either place and looked up in the rootfs). */
export function parseUser(value: string): ParsedUser {
  const parts = value.split(":");
  if (parts.length > 2) throw invalid(`invalid user ${JSON.stringify(value)}: expected UID[:GID]`);
  const out: ParsedUser = { user: idOrName(parts[0]!, "user", value) };
  if (parts.length === 2) out.group = idOrName(parts[1]!, "group", value);
  return out;
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids?: number[];
}

/** A file of the rootfs, read only if it resolves to somewhere inside the rootfs. */
function readInRoot(rootfs: string, rel: string): string | undefined {
  try {
    const root = realpathSync(rootfs);
    const real = realpathSync(join(root, rel));
    if (real !== root && !real.startsWith(root.endsWith(sep) ? root : root + sep)) return undefined;
    return readFileSync(real, "utf8");
  } catch {
    return undefined;
  }
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}
interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 4 || line.startsWith("#")) continue;
    const uid = Number(f[2]);
    const gid = Number(f[3]);
    if (Number.isInteger(uid) && Number.isInteger(gid)) out.push({ name: f[0]!, uid, gid });
  }
  return out;
}

function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 3 || line.startsWith("#")) continue;
    const gid = Number(f[2]);
    if (Number.isInteger(gid)) {
      out.push({ name: f[0]!, gid, members: (f[3] ?? "").split(",").filter((m) => m !== "") });
    }
  }
  return out;
}

/**
 * Numbers for a parsed --user, as containerd's WithUser: a numeric user without a group takes
 * its primary group from the rootfs's /etc/passwd, or its own number when it is not listed;
 * names must be listed (in /etc/passwd, /etc/group). Supplementary groups are those of
 * /etc/group that name the user.
 */
export function resolveUser(parsed: ParsedUser, rootfs: string | undefined): ResolvedUser {
  const passwdText = rootfs === undefined ? undefined : readInRoot(rootfs, "etc/passwd");
  const groupText = rootfs === undefined ? undefined : readInRoot(rootfs, "etc/group");
  const passwd = passwdText === undefined ? [] : parsePasswd(passwdText);
  const groups = groupText === undefined ? [] : parseGroup(groupText);
  const where = rootfs === undefined ? "(no rootfs to look it up in)" : `in ${join(rootfs, "etc/passwd")}`;

  let uid: number;
  let gid: number | undefined;
  let name: string | undefined;
  if (typeof parsed.user === "number") {
    uid = parsed.user;
    const e = passwd.find((p) => p.uid === uid);
    name = e?.name;
    gid = e?.gid ?? uid;
  } else {
    const e = passwd.find((p) => p.name === parsed.user);
    if (e === undefined) throw invalid(`no user ${JSON.stringify(parsed.user)} ${where}`);
    uid = e.uid;
    gid = e.gid;
    name = e.name;
  }
  if (parsed.group !== undefined) {
    if (typeof parsed.group === "number") {
      gid = parsed.group;
    } else {
      const g = groups.find((x) => x.name === parsed.group);
      if (g === undefined) {
        throw invalid(
          `no group ${JSON.stringify(parsed.group)} ${rootfs === undefined ? "(no rootfs to look it up in)" : `in ${join(rootfs, "etc/group")}`}`,
        );
      }
      gid = g.gid;
    }
  }
  const out: ResolvedUser = { uid, gid };
  if (name !== undefined) {
    const extra = groups.filter((g) => g.members.includes(name!)).map((g) => g.gid);
    if (extra.length > 0) out.additionalGids = [...new Set(extra)];
  }
  return out;
}
