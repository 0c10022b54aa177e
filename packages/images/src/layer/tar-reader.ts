// A streaming reader of tar archives as image layers use them: ustar, GNU (long names 'L'/'K',
// base-256 numbers) and POSIX pax (local 'x' and global 'g' records: path, linkpath, size, uid,
// gid, mtime, SCHILY.xattr.*). Written here rather than taken from tar-stream because a layer's
// xattrs are binary (security.capability) and tar-stream decodes pax values as UTF-8, which
// corrupts them; names are kept byte-exact too, as "binary strings" (one char per byte, latin1),
// so a name that is not UTF-8 lands on disk with the bytes it had in the layer.
//
// Every byte read from the source is fed to a sha256 (the layer's DiffID) and counted, including
// whatever follows the end-of-archive blocks: the reader drains the source to its end.

import { createHash } from "node:crypto";
import { Code, TtrpcError } from "@tsrunc/ttrpc/status";

export type TarEntryType = "file" | "link" | "symlink" | "char" | "block" | "directory" | "fifo";

export interface TarHeader {
  /** The entry's name as a binary string (each char one byte of the original). */
  name: string;
  type: TarEntryType;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch (fractional when a pax record says so). */
  mtime: number;
  /** Link target of a symlink or hardlink, as a binary string. */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** SCHILY.xattr.* records: name → raw value. */
  xattrs: Map<string, Buffer>;
}

/** Headers and long names larger than this are refused (as Go's archive/tar does). */
const maxLongHeader = 1024 * 1024;
const block = 512;
const zeroBlock = Buffer.alloc(block);

function invalid(message: string): TtrpcError {
  return new TtrpcError(Code.InvalidArgument, `invalid layer tar: ${message}`);
}

/** Pulls exact byte counts out of an async sequence of chunks, hashing and counting all of it. */
export class ByteSource {
  readonly #it: AsyncIterator<Uint8Array>;
  readonly #hash = createHash("sha256");
  #buf: Buffer = Buffer.alloc(0);
  #off = 0;
  #done = false;
  /** Bytes pulled from the source so far. */
  bytes = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.#it = source[Symbol.asyncIterator]();
  }

  get #avail(): number {
    return this.#buf.length - this.#off;
  }

  async #pull(): Promise<boolean> {
    if (this.#done) return false;
    const r = await this.#it.next();
    if (r.done) {
      this.#done = true;
      return false;
    }
    const c = Buffer.isBuffer(r.value)
      ? r.value
      : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    if (c.length === 0) return true;
    this.#hash.update(c);
    this.bytes += c.length;
    this.#buf = this.#avail > 0 ? Buffer.concat([this.#buf.subarray(this.#off), c]) : c;
    this.#off = 0;
    return true;
  }

  /** Exactly n bytes, or undefined at a clean end of the source; a short read is an error. */
  async read(n: number): Promise<Buffer | undefined> {
    while (this.#avail < n) {
      if (!(await this.#pull())) {
        if (this.#avail === 0) return undefined;
        throw invalid("unexpected end of archive");
      }
    }
    const out = this.#buf.subarray(this.#off, this.#off + n);
    this.#off += n;
    return out;
  }

  /** Yields chunks totalling exactly n bytes (views into the source's buffers: use them at once). */
  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.#avail === 0 && !(await this.#pull()))
        throw invalid("unexpected end of archive inside an entry");
      const k = Math.min(left, this.#avail);
      const out = this.#buf.subarray(this.#off, this.#off + k);
      this.#off += k;
      left -= k;
      yield out;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.take(n)) {
      // discarded
    }
  }

  /** Reads the source to its end. */
  async drain(): Promise<void> {
    this.#off = this.#buf.length;
    while (await this.#pull()) this.#off = this.#buf.length;
  }

  /** "sha256:<hex>" of every byte pulled; call once, after drain. */
  digest(): string {
    return `sha256:${this.#hash.digest("hex")}`;
  }
}

function cstr(buf: Buffer, start: number, end: number): string {
  const field = buf.subarray(start, end);
  const nul = field.indexOf(0);
  return (nul === -1 ? field : field.subarray(0, nul)).toString("latin1");
}

function num(buf: Buffer, start: number, end: number, field: string): number {
  const b = buf.subarray(start, end);
  if (b[0]! & 0x80) {
    // GNU base-256: big-endian two's complement; a negative value has the sign bit 0x40 set too
    if (b[0]! & 0x40) throw invalid(`negative ${field}`);
    let v = b[0]! & 0x3f;
    for (let i = 1; i < b.length; i++) {
      v = v * 256 + b[i]!;
      if (v > Number.MAX_SAFE_INTEGER) throw invalid(`${field} too large`);
    }
    return v;
  }
  const s = cstr(buf, start, end).trim();
  if (s === "") return 0;
  if (!/^[0-7]+$/.test(s)) throw invalid(`bad ${field} field ${JSON.stringify(s)}`);
  return Number.parseInt(s, 8);
}

function checksumOk(h: Buffer): boolean {
  const want = num(h, 148, 156, "checksum");
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < block; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += c;
    signed += c > 127 ? c - 256 : c;
  }
  return want === unsigned || want === signed;
}

/** Parses pax records ("<len> <key>=<value>\n") into `into`; values stay raw bytes. */
function parsePax(buf: Buffer, into: Map<string, Buffer>): void {
  let pos = 0;
  while (pos < buf.length) {
    if (buf[pos] === 0) break;
    const sp = buf.indexOf(0x20, pos);
    const lenText = sp === -1 ? "" : buf.subarray(pos, sp).toString("latin1");
    if (!/^[0-9]{1,8}$/.test(lenText)) throw invalid("bad pax record length");
    const len = Number(lenText);
    if (len <= sp - pos + 1 || pos + len > buf.length || buf[pos + len - 1] !== 0x0a)
      throw invalid("bad pax record");
    const rec = buf.subarray(sp + 1, pos + len - 1);
    const eq = rec.indexOf(0x3d);
    if (eq <= 0) throw invalid("bad pax record: no key");
    const key = rec.subarray(0, eq).toString("utf8");
    const value = rec.subarray(eq + 1);
    if (value.length === 0) into.delete(key);
    else into.set(key, Buffer.from(value));
    pos += len;
  }
}

function paxInt(v: Buffer | undefined, key: string): number | undefined {
  if (v === undefined) return undefined;
  const s = v.toString("latin1");
  if (!/^[0-9]{1,16}$/.test(s)) throw invalid(`bad pax ${key} ${JSON.stringify(s.slice(0, 40))}`);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw invalid(`pax ${key} too large`);
  return n;
}

function paxTime(v: Buffer | undefined): number | undefined {
  if (v === undefined) return undefined;
  const s = v.toString("latin1");
  if (!/^-?[0-9]{1,20}(\.[0-9]{0,9})?$/.test(s))
    throw invalid(`bad pax mtime ${JSON.stringify(s.slice(0, 40))}`);
  return Number(s);
}

const typeOf: Record<string, TarEntryType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "link",
  "2": "symlink",
  "3": "char",
  "4": "block",
  "5": "directory",
  "6": "fifo",
};

export interface TarEntry {
  header: TarHeader;
  /** The entry's data (`header.size` bytes); what is not read is skipped. */
  data(): AsyncGenerator<Buffer>;
}

/**
 * The entries of a tar stream, in order. The source is drained to its end once the archive ends,
 * so `src.digest()` then covers the whole stream.
 */
export async function* tarEntries(src: ByteSource): AsyncGenerator<TarEntry> {
  const global = new Map<string, Buffer>();
  let local: Map<string, Buffer> | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const h = await src.read(block);
    if (h === undefined) break; // no end-of-archive blocks: tolerated, as Go's reader does
    if (h.equals(zeroBlock)) {
      await src.drain();
      break;
    }
    if (!checksumOk(h)) throw invalid("header checksum mismatch (not a tar, or corrupted)");
    const flag = String.fromCharCode(h[156]!);
    let size = num(h, 124, 136, "size");
    const padded = (n: number) => n + ((block - (n % block)) % block);

    if (flag === "x" || flag === "g" || flag === "L" || flag === "K") {
      if (size > maxLongHeader) throw invalid(`${flag} header of ${size} bytes`);
      const body = size === 0 ? Buffer.alloc(0) : await src.read(padded(size));
      if (body === undefined) throw invalid("unexpected end of archive");
      const data = body.subarray(0, size);
      if (flag === "x") {
        local = new Map(global);
        parsePax(data, local);
      } else if (flag === "g") {
        parsePax(data, global);
      } else {
        const nul = data.indexOf(0);
        const text = (nul === -1 ? data : data.subarray(0, nul)).toString("latin1");
        if (flag === "L") longName = text;
        else longLink = text;
      }
      continue;
    }

    const type = typeOf[flag];
    if (type === undefined) {
      const what = flag === "S" ? "GNU sparse files are" : `entry type ${JSON.stringify(flag)} is`;
      throw invalid(`${what} not supported (entry ${JSON.stringify(cstr(h, 0, 100))})`);
    }
    const pax = local ?? global;
    local = undefined;
    for (const key of pax.keys())
      if (key.startsWith("GNU.sparse.")) throw invalid("GNU sparse files (pax) are not supported");

    const magic = h.subarray(257, 265).toString("latin1");
    let name = cstr(h, 0, 100);
    if (magic.startsWith("ustar\0")) {
      const prefix = cstr(h, 345, 500);
      if (prefix !== "") name = `${prefix}/${name}`;
    }
    let linkname = cstr(h, 157, 257);
    if (longName !== undefined) name = longName;
    if (longLink !== undefined) linkname = longLink;
    longName = undefined;
    longLink = undefined;
    const paxPath = pax.get("path");
    if (paxPath !== undefined) name = paxPath.toString("latin1");
    const paxLink = pax.get("linkpath");
    if (paxLink !== undefined) linkname = paxLink.toString("latin1");
    size = paxInt(pax.get("size"), "size") ?? size;

    const xattrs = new Map<string, Buffer>();
    for (const [k, v] of pax) if (k.startsWith("SCHILY.xattr.")) xattrs.set(k.slice(13), v);

    const header: TarHeader = {
      name,
      type: flag === "\0" && name.endsWith("/") ? "directory" : type,
      mode: num(h, 100, 108, "mode"),
      uid: paxInt(pax.get("uid"), "uid") ?? num(h, 108, 116, "uid"),
      gid: paxInt(pax.get("gid"), "gid") ?? num(h, 116, 124, "gid"),
      size,
      mtime: paxTime(pax.get("mtime")) ?? num(h, 136, 148, "mtime"),
      linkname,
      devmajor: num(h, 329, 337, "devmajor"),
      devminor: num(h, 337, 345, "devminor"),
      xattrs,
    };
    // Only regular files carry data in a layer; other types' size is skipped as data all the same.
    let consumed = 0;
    const dataSize = size;
    yield {
      header,
      async *data() {
        for await (const chunk of src.take(dataSize - consumed)) {
          consumed += chunk.length;
          yield chunk;
        }
      },
    };
    await src.skip(dataSize - consumed);
    consumed = dataSize;
    await src.skip(padded(dataSize) - dataSize);
  }
}
