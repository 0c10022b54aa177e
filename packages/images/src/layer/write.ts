// Writes an overlay upper directory as an OCI layer tar: what Diff.Diff returns for a snapshot of
// ours on the overlay backend (its directory holds exactly what it adds over its parent). Overlay's
// removals become OCI whiteouts: a 0/0 character device NAME → an empty `.wh.NAME`; a directory with
// `trusted.overlay.opaque=y` → the directory and `.wh..wh..opq` in it. Entries in byte order of
// their names, a directory before what it holds; hardlinks inside the layer as link entries (the
// first path seen is the target); symlinks, fifos and devices as themselves; owner, mode and mtime
// kept; xattrs (but trusted.overlay.*) as SCHILY.xattr.* pax records, byte-exact. Headers are
// ustar with pax records for what ustar cannot hold (long or non-ASCII names, big ids and sizes),
// written here rather than with tar-stream so that binary xattr values (security.capability) stay
// byte-exact. Names are read as raw bytes (latin1 "binary strings"), as the apply side does.

import { constants as fsc, lstatSync, readdirSync, readlinkSync, type Stats } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { Code, TtrpcError } from "@tsrunc/ttrpc/status";
import { execa } from "execa";

const S_IFMT = 0o170000;
const enc = (s: string) => Buffer.from(s, "latin1");

function octal(value: number, width: number): string | undefined {
  const s = Math.trunc(value).toString(8);
  return s.length < width ? `${s.padStart(width - 1, "0")}\0` : undefined;
}

/** A pax record: "LEN key=value\n", LEN counting itself. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([enc(` ${key}=`), value, enc("\n")]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([enc(String(len)), body]);
}

interface Entry {
  /** Raw bytes of the path inside the layer (no leading "./"; "/" after a directory). */
  name: Buffer;
  type: "0" | "1" | "2" | "3" | "4" | "5" | "6";
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  linkname?: Buffer;
  devmajor?: number;
  devminor?: number;
  xattrs?: Map<string, Buffer>;
}

function blocks(size: number): Buffer[] {
  const pad = (512 - (size % 512)) % 512;
  return pad ? [Buffer.alloc(pad)] : [];
}

function ustar(e: Entry, name: Buffer, size: number, type: string, linkname: Buffer | undefined): Buffer {
  const h = Buffer.alloc(512);
  name.copy(h, 0, 0, Math.min(100, name.length));
  h.write(octal(e.mode & 0o7777, 8) ?? "0000000\0", 100, "latin1");
  h.write(octal(e.uid, 8) ?? "0000000\0", 108, "latin1");
  h.write(octal(e.gid, 8) ?? "0000000\0", 116, "latin1");
  h.write(octal(size, 12) ?? "00000000000\0", 124, "latin1");
  h.write(octal(Math.max(0, e.mtime), 12) ?? "00000000000\0", 136, "latin1");
  h.write("        ", 148, "latin1");
  h.write(type, 156, "latin1");
  if (linkname) linkname.copy(h, 157, 0, Math.min(100, linkname.length));
  h.write("ustar\0", 257, "latin1");
  h.write("00", 263, "latin1");
  if (e.devmajor !== undefined) h.write(octal(e.devmajor, 8) ?? "0000000\0", 329, "latin1");
  if (e.devminor !== undefined) h.write(octal(e.devminor, 8) ?? "0000000\0", 337, "latin1");
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return h;
}

const ascii = (b: Buffer) => b.every((c) => c >= 0x20 && c < 0x7f);

/** The header blocks of an entry (a pax header first when ustar cannot hold it all). */
function headerOf(e: Entry): Buffer {
  const pax: Buffer[] = [];
  if (e.name.length > 100 || !ascii(e.name)) pax.push(paxRecord("path", e.name));
  if (e.linkname && (e.linkname.length > 100 || !ascii(e.linkname)))
    pax.push(paxRecord("linkpath", e.linkname));
  if (octal(e.uid, 8) === undefined) pax.push(paxRecord("uid", enc(String(e.uid))));
  if (octal(e.gid, 8) === undefined) pax.push(paxRecord("gid", enc(String(e.gid))));
  if (octal(e.size, 12) === undefined) pax.push(paxRecord("size", enc(String(e.size))));
  for (const [k, v] of e.xattrs ?? []) pax.push(paxRecord(`SCHILY.xattr.${k}`, v));
  const own = ustar(e, e.name, e.size, e.type, e.linkname);
  if (!pax.length) return own;
  const body = Buffer.concat(pax);
  const paxName = Buffer.concat([enc("PaxHeaders/"), e.name.subarray(0, 80)]);
  const ph = ustar({ ...e, mode: 0o644 }, paxName, body.length, "x", undefined);
  return Buffer.concat([ph, body, ...blocks(body.length), own]);
}

/** getfattr's \ooo escapes of a path back to its bytes (as a latin1 string). */
function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** Every xattr under `dir` (symlinks not followed), by absolute path (latin1 bytes). */
async function readXattrs(dir: string): Promise<Map<string, Map<string, Buffer>>> {
  const r = await execa(
    "getfattr",
    ["-R", "-h", "-d", "-m", "-", "-e", "base64", "--absolute-names", "--", dir],
    {
      reject: false,
      encoding: "buffer",
      stdin: "ignore",
    },
  );
  if (r.exitCode !== 0 && r.stdout.length === 0 && r.stderr.length > 0)
    throw new TtrpcError(Code.Internal, `getfattr ${dir}: ${Buffer.from(r.stderr).toString().slice(0, 200)}`);
  const out = new Map<string, Map<string, Buffer>>();
  let cur: Map<string, Buffer> | undefined;
  for (const line of Buffer.from(r.stdout).toString("latin1").split("\n")) {
    if (line.startsWith("# file: ")) {
      cur = new Map();
      out.set(unescapeOctal(line.slice("# file: ".length)), cur);
    } else if (cur && line.includes("=")) {
      const at = line.indexOf("=");
      const name = unescapeOctal(line.slice(0, at));
      const v = line.slice(at + 1);
      const value = v.startsWith("0s")
        ? Buffer.from(v.slice(2), "base64")
        : v.startsWith('"')
          ? enc(unescapeOctal(v.slice(1, -1)))
          : Buffer.alloc(0);
      cur.set(name, value);
    }
  }
  return out;
}

const fileType = (st: Stats): Entry["type"] | "skip" => {
  switch (st.mode & S_IFMT) {
    case fsc.S_IFREG:
      return "0";
    case fsc.S_IFLNK:
      return "2";
    case fsc.S_IFCHR:
      return "3";
    case fsc.S_IFBLK:
      return "4";
    case fsc.S_IFDIR:
      return "5";
    case fsc.S_IFIFO:
      return "6";
    default:
      return "skip"; // sockets: not in layers
  }
};

/**
 * The overlay upper directory `dir` as an uncompressed OCI layer tar, streamed. Aborts with
 * Canceled when `signal` fires.
 */
export async function* writeOverlayLayer(dir: string, signal?: AbortSignal): AsyncGenerator<Buffer> {
  const root = Buffer.from(dir).toString("latin1");
  const xattrs = await readXattrs(dir);
  const links = new Map<string, Buffer>(); // "dev:ino" → first name
  const fp = (rel: string) => Buffer.from(join(root, rel), "latin1");
  async function* walk(rel: string): AsyncGenerator<Buffer> {
    const names = (readdirSync(fp(rel || "."), { encoding: "buffer" }) as Buffer[])
      .map((b) => b.toString("latin1"))
      .sort((a, b) => Buffer.compare(enc(a), enc(b)));
    for (const n of names) {
      if (signal?.aborted) throw new TtrpcError(Code.Canceled, "diff canceled");
      const path = rel ? `${rel}/${n}` : n;
      const st = lstatSync(fp(path));
      const type = fileType(st);
      if (type === "skip") continue;
      const base = { uid: st.uid, gid: st.gid, mode: st.mode, mtime: Math.floor(st.mtimeMs / 1000) };
      if (type === "3" && st.rdev === 0) {
        // overlay's whiteout of NAME
        const wh = rel ? `${rel}/.wh.${n}` : `.wh.${n}`;
        yield headerOf({ ...base, name: enc(wh), type: "0", size: 0, mode: 0o644 });
        continue;
      }
      const own = xattrs.get(join(root, path));
      const kept = new Map([...(own ?? [])].filter(([k]) => !k.startsWith("trusted.overlay.")));
      const e: Entry = { ...base, name: enc(path), type, size: 0, ...(kept.size ? { xattrs: kept } : {}) };
      if (type === "5") {
        e.name = enc(`${path}/`);
        yield headerOf(e);
        if (own?.get("trusted.overlay.opaque")?.toString() === "y")
          yield headerOf({ ...base, name: enc(`${path}/.wh..wh..opq`), type: "0", size: 0, mode: 0o644 });
        yield* walk(path);
        continue;
      }
      if (type === "2") {
        e.linkname = readlinkSync(fp(path), { encoding: "buffer" }) as Buffer;
        yield headerOf(e);
        continue;
      }
      if (type === "3" || type === "4") {
        e.devmajor = Math.floor(st.rdev / 256) & 0xfff;
        e.devminor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
        yield headerOf(e);
        continue;
      }
      if (type === "6") {
        yield headerOf(e);
        continue;
      }
      // A regular file: a hardlink to the first name of its inode seen in this layer.
      if (st.nlink > 1) {
        const id = `${st.dev}:${st.ino}`;
        const first = links.get(id);
        if (first) {
          yield headerOf({ ...e, type: "1", linkname: first });
          continue;
        }
        links.set(id, e.name);
      }
      e.size = st.size;
      yield headerOf(e);
      const fh = await open(fp(path), fsc.O_RDONLY | fsc.O_NOFOLLOW);
      try {
        let left = st.size;
        let pos = 0;
        while (left > 0) {
          const buf = Buffer.allocUnsafe(Math.min(left, 1 << 20));
          const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
          if (bytesRead === 0) throw new TtrpcError(Code.Aborted, `${path} shrank while it was read`);
          yield buf.subarray(0, bytesRead);
          pos += bytesRead;
          left -= bytesRead;
        }
      } finally {
        await fh.close();
      }
      yield* blocks(st.size);
    }
  }
  yield* walk("");
  yield Buffer.alloc(1024);
}
