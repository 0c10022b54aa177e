// Applies a layer (a tar stream, gzip/zstd/uncompressed) to a directory, in one of two modes:
//  - "overlay": the directory is a fresh overlayfs upper dir above the lower layers; a whiteout
//    `.wh.NAME` becomes a 0/0 character device NAME and `.wh..wh..opq` the
//    `trusted.overlay.opaque=y` xattr on its directory.
//  - "flat": the directory already holds the lower layers (a copy); whiteouts delete, an opaque
//    directory loses every entry this layer did not write.
//
// Nothing outside the directory is ever created or changed. Entry names are cleaned as containerd
// does (an absolute name is taken relative to the root); a name that still climbs out is refused.
// Parent directories are resolved one component at a time with lstat: a symlink on the way is
// followed only while it stays inside the root (an absolute target is taken inside it, as the
// container sees it), else the entry is refused; the last component is never followed (replaced,
// O_NOFOLLOW|O_EXCL). Hardlink targets must already be in the directory and inside it. On any
// error the directory is emptied, and the error names the entry.
//
// File-system calls are synchronous (each is a few microseconds; an async round trip per call
// made a 100,000-entry layer several times slower), and the stream is awaited between entries.
// Node has neither mknod(2) nor setxattr(2): device nodes, fifos and whiteout devices are made by
// `mknod` at the end of the layer, and xattrs set in one `setfattr -h --restore=-` run; every
// deferred action names a path whose parents were resolved and cannot change afterwards (a
// removal drops the deferred actions at or under the removed path).

import {
  chmodSync,
  closeSync,
  fchmodSync,
  fchownSync,
  constants as fsc,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
  type Stats,
  symlinkSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { Code, TtrpcError } from "@tsrunc/ttrpc/status";
import { execa } from "execa";
import { digestHex } from "../digest.js";
import { type Compression, compressionOfMediaType, decompressed } from "./decompress.js";
import { ByteSource, type TarHeader, tarEntries } from "./tar-reader.js";

export type ApplyMode = "overlay" | "flat";

export interface ApplyOptions {
  mode: ApplyMode;
  /** How the stream is compressed; default: from `mediaType`, else sniffed from the first bytes. */
  compression?: Compression;
  /** The layer descriptor's media type (used when `compression` is not given). */
  mediaType?: string;
  /** When given, a different DiffID fails the apply (FailedPrecondition) and empties the directory. */
  expectedDiffId?: string;
  /** Overlay mode: the lower layer directories, newest first; a parent directory the layer does
   *  not carry is created in the upper dir with the metadata it has in the newest lower. */
  parents?: readonly string[];
  /** Refuse layers with more entries (ResourceExhausted); default 1,000,000. */
  maxEntries?: number;
  /** Refuse layers whose uncompressed stream is larger (ResourceExhausted); default none. */
  maxSize?: number;
  /** Aborts the apply (Canceled), which then empties the directory. */
  signal?: AbortSignal;
}

export interface ApplyResult {
  /** sha256 of the uncompressed stream. */
  diffId: string;
  /** Bytes of the uncompressed stream. */
  size: number;
  /** Tar entries applied (whiteouts included). */
  entries: number;
}

const whiteoutPrefix = ".wh.";
const opaqueMarker = ".wh..wh..opq";
const maxSymlinkHops = 40;
const nodeConcurrency = 16;

/** Paths here are "binary strings" (one char per byte) so names need not be UTF-8. */
const fp = (bin: string): Buffer => Buffer.from(bin, "latin1");
const shown = (bin: string): string => JSON.stringify(Buffer.from(bin, "latin1").toString("utf8"));

function refuse(entry: string, why: string): TtrpcError {
  return new TtrpcError(Code.InvalidArgument, `layer entry ${shown(entry)}: ${why}`);
}

/**
 * A tar name made relative to the root as containerd does (clean, then join onto the root):
 * "" for the root itself, undefined when the cleaned name still climbs out.
 */
export function cleanEntryName(name: string): string | undefined {
  const absolute = name.startsWith("/");
  const out: string[] = [];
  for (const part of name.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0) out.pop();
      else if (!absolute) return undefined;
      continue;
    }
    out.push(part);
  }
  return out.join("/");
}

interface PendingNode {
  kind: "c" | "b" | "p";
  major: number;
  minor: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number | undefined;
  entry: string;
}

/** Applies the tar stream `input` to the directory `dir`; see the module comment. */
export async function applyLayer(
  input: AsyncIterable<Uint8Array>,
  dir: string,
  options: ApplyOptions,
): Promise<ApplyResult> {
  if (options.expectedDiffId !== undefined) digestHex(options.expectedDiffId);
  const root = Buffer.from(realpathSync(dir)).toString("latin1");
  if (!lstatSync(fp(root)).isDirectory())
    throw new TtrpcError(Code.InvalidArgument, `apply target ${dir} is not a directory`);
  const compression = options.compression ?? compressionOfMediaType(options.mediaType);
  const src = new ByteSource(decompressed(input, compression));
  const applier = new Applier(root, options);
  try {
    for await (const entry of tarEntries(src)) {
      if (options.signal?.aborted) throw new TtrpcError(Code.Canceled, "layer apply canceled");
      if (options.maxSize !== undefined && src.bytes > options.maxSize)
        throw new TtrpcError(
          Code.ResourceExhausted,
          `layer is larger than ${options.maxSize} bytes uncompressed`,
        );
      await applier.entry(entry.header, entry.data());
    }
    if (options.maxSize !== undefined && src.bytes > options.maxSize)
      throw new TtrpcError(
        Code.ResourceExhausted,
        `layer is larger than ${options.maxSize} bytes uncompressed`,
      );
    await applier.finish();
    const diffId = src.digest();
    if (options.expectedDiffId !== undefined && diffId !== options.expectedDiffId)
      throw new TtrpcError(
        Code.FailedPrecondition,
        `layer DiffID mismatch: the uncompressed layer is ${diffId}, expected ${options.expectedDiffId}`,
      );
    return { diffId, size: src.bytes, entries: applier.count };
  } catch (err) {
    const input2 = input as { destroy?: () => void };
    if (typeof input2.destroy === "function") input2.destroy();
    emptyDir(root);
    throw err;
  }
}

/** Removes everything inside `root` (a real directory; symlinks inside are removed, not followed). */
function emptyDir(root: string): void {
  for (const name of readdirSync(fp(root), { encoding: "buffer" }))
    rmSync(Buffer.concat([fp(root), Buffer.from("/"), name]), { recursive: true, force: true });
}

function lstatOrUndefined(bin: string): Stats | undefined {
  return lstatSync(fp(bin), { throwIfNoEntry: false });
}

class Applier {
  count = 0;
  readonly #root: string;
  readonly #opts: ApplyOptions;
  readonly #overlay: boolean;
  readonly #maxEntries: number;
  /** Relative paths known to be real directories (no symlink anywhere on the way). */
  #dirs = new Set<string>([""]);
  /** Flat mode: relative paths this layer wrote (an opaque directory keeps only these). */
  readonly #written = new Set<string>();
  /** Flat mode: relative paths of opaque directories, handled at the end. */
  #opaque = new Set<string>();
  readonly #nodes = new Map<string, PendingNode>();
  readonly #xattrs = new Map<string, Map<string, Buffer>>();
  readonly #dirTimes = new Map<string, number>();

  constructor(root: string, opts: ApplyOptions) {
    this.#root = root;
    this.#opts = opts;
    this.#overlay = opts.mode === "overlay";
    this.#maxEntries = opts.maxEntries ?? 1_000_000;
    if (opts.mode !== "overlay" && opts.mode !== "flat")
      throw new TtrpcError(Code.InvalidArgument, `unknown apply mode ${String(opts.mode)}`);
  }

  #abs(rel: string): string {
    return rel === "" ? this.#root : `${this.#root}/${rel}`;
  }

  async entry(h: TarHeader, data: AsyncGenerator<Buffer>): Promise<void> {
    if (++this.count > this.#maxEntries)
      throw new TtrpcError(Code.ResourceExhausted, `layer has more than ${this.#maxEntries} entries`);
    const rel = cleanEntryName(h.name);
    if (rel === undefined) throw refuse(h.name, "the name climbs out of the root");
    const slash = rel.lastIndexOf("/");
    const parentRel = slash === -1 ? "" : rel.slice(0, slash);
    const base = rel.slice(slash + 1);

    if (base.startsWith(whiteoutPrefix)) {
      this.#whiteout(h, parentRel, base);
      return;
    }
    if (rel === "") {
      if (h.type !== "directory") throw refuse(h.name, "the root must be a directory");
      this.#meta(h, this.#root, true);
      this.#dirTimes.set(this.#root, h.mtime);
      this.#queueXattrs(h, this.#root);
      return;
    }
    const parentAbs = this.#abs(this.#resolveDir(parentRel, h.name, true));
    const abs = `${parentAbs}/${base}`;
    const realRel = abs.slice(this.#root.length + 1);
    const existing = lstatOrUndefined(abs);
    this.#nodes.delete(abs);
    if (existing && !(existing.isDirectory() && h.type === "directory")) this.#remove(abs, existing);

    switch (h.type) {
      case "directory":
        if (!existing?.isDirectory()) mkdirSync(fp(abs), 0o700);
        this.#dirs.add(realRel);
        this.#meta(h, abs, true);
        this.#dirTimes.set(abs, h.mtime);
        break;
      case "file": {
        const fd = openSync(fp(abs), fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
        try {
          for await (const chunk of data) {
            let off = 0;
            while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
          }
          fchownSync(fd, h.uid, h.gid);
          fchmodSync(fd, h.mode & 0o7777);
          futimesSync(fd, h.mtime, h.mtime);
        } finally {
          closeSync(fd);
        }
        break;
      }
      case "symlink":
        symlinkSync(fp(h.linkname), fp(abs));
        lchownSync(fp(abs), h.uid, h.gid);
        lutimesSync(fp(abs), h.mtime, h.mtime);
        break;
      case "link": {
        const targetRel = cleanEntryName(h.linkname);
        if (targetRel === undefined || targetRel === "")
          throw refuse(h.name, `hardlink target ${shown(h.linkname)} is outside the root`);
        const ts = targetRel.lastIndexOf("/");
        const tParent = this.#resolveDir(ts === -1 ? "" : targetRel.slice(0, ts), h.name, false);
        const targetAbs = `${this.#abs(tParent)}/${targetRel.slice(ts + 1)}`;
        if (targetAbs === abs) break;
        if (this.#nodes.has(targetAbs)) await this.#flushNodes();
        const st = lstatOrUndefined(targetAbs);
        if (!st) throw refuse(h.name, `hardlink target ${shown(h.linkname)} does not exist in the layer`);
        if (st.isDirectory()) throw refuse(h.name, `hardlink target ${shown(h.linkname)} is a directory`);
        linkSync(fp(targetAbs), fp(abs));
        break;
      }
      case "char":
      case "block":
      case "fifo":
        this.#nodes.set(abs, {
          kind: h.type === "char" ? "c" : h.type === "block" ? "b" : "p",
          major: h.devmajor,
          minor: h.devminor,
          mode: h.mode & 0o7777,
          uid: h.uid,
          gid: h.gid,
          mtime: h.mtime,
          entry: h.name,
        });
        break;
    }
    if (h.type !== "link") this.#queueXattrs(h, abs);
    if (!this.#overlay) this.#written.add(realRel);
  }

  #whiteout(h: TarHeader, parentRel: string, base: string): void {
    if (base === opaqueMarker) {
      const dirRel = this.#resolveDir(parentRel, h.name, true);
      if (this.#overlay) this.#setXattr(this.#abs(dirRel), "trusted.overlay.opaque", Buffer.from("y"));
      else this.#opaque.add(dirRel);
      return;
    }
    if (base.startsWith(`${whiteoutPrefix}${whiteoutPrefix}`)) return; // other aufs metadata: ignored
    const name = base.slice(whiteoutPrefix.length);
    if (name === "" || name === "." || name === "..") throw refuse(h.name, "whiteout of an invalid name");
    const parentAbs = this.#abs(this.#resolveDir(parentRel, h.name, true));
    const abs = `${parentAbs}/${name}`;
    const existing = lstatOrUndefined(abs);
    if (existing) this.#remove(abs, existing);
    this.#nodes.delete(abs);
    if (this.#overlay) {
      this.#nodes.set(abs, {
        kind: "c",
        major: 0,
        minor: 0,
        mode: 0,
        uid: h.uid,
        gid: h.gid,
        mtime: undefined,
        entry: h.name,
      });
    }
  }

  /**
   * The real relative path of directory `rel` (symlinks inside the root followed, nothing outside
   * ever reached); missing components are created when `create`, else refused.
   */
  #resolveDir(rel: string, entry: string, create: boolean): string {
    if (this.#dirs.has(rel)) return rel;
    const todo = rel === "" ? [] : rel.split("/");
    todo.reverse();
    let cur = "";
    let hops = 0;
    while (todo.length > 0) {
      const comp = todo.pop()!;
      const next = cur === "" ? comp : `${cur}/${comp}`;
      if (this.#dirs.has(next)) {
        cur = next;
        continue;
      }
      const abs = this.#abs(next);
      const st = lstatOrUndefined(abs);
      if (!st) {
        if (!create) throw refuse(entry, `${shown(next)} does not exist`);
        if (this.#nodes.has(abs)) throw refuse(entry, `${shown(next)} is not a directory`);
        this.#mkdirImplicit(next, abs);
        cur = next;
        continue;
      }
      if (st.isDirectory()) {
        this.#dirs.add(next);
        cur = next;
        continue;
      }
      if (!st.isSymbolicLink()) throw refuse(entry, `${shown(next)} is not a directory`);
      if (++hops > maxSymlinkHops) throw refuse(entry, "too many levels of symbolic links");
      const target = readlinkSync(fp(abs), { encoding: "buffer" }).toString("latin1");
      const stack = target.startsWith("/") ? [] : cur === "" ? [] : cur.split("/");
      for (const part of target.split("/")) {
        if (part === "" || part === ".") continue;
        if (part === "..") {
          if (stack.length === 0)
            throw refuse(
              entry,
              `${shown(next)} is a symlink to ${shown(target)}, which points outside the root`,
            );
          stack.pop();
        } else stack.push(part);
      }
      // continue from the root with the target's components, then what was left
      for (let i = stack.length - 1; i >= 0; i--) todo.push(stack[i]!);
      cur = "";
    }
    return cur;
  }

  #mkdirImplicit(rel: string, abs: string): void {
    mkdirSync(fp(abs), 0o755);
    this.#dirs.add(rel);
    if (!this.#overlay) {
      this.#written.add(rel);
      return;
    }
    for (const lower of this.#opts.parents ?? []) {
      const st = lstatOrUndefined(`${Buffer.from(lower).toString("latin1")}/${rel}`);
      if (!st) continue;
      if (st.isDirectory()) {
        lchownSync(fp(abs), st.uid, st.gid);
        chmodSync(fp(abs), st.mode & 0o7777);
        this.#dirTimes.set(abs, st.mtimeMs / 1000);
      }
      break;
    }
  }

  /** Removes a path (a directory with everything in it) and forgets what was deferred for it. */
  #remove(abs: string, st: Stats): void {
    if (st.isDirectory()) {
      rmSync(fp(abs), { recursive: true, force: true });
      this.#dirs = new Set([""]);
    } else unlinkSync(fp(abs));
    const under = `${abs}/`;
    const gone = (p: string) => p === abs || p.startsWith(under);
    for (const p of this.#nodes.keys()) if (gone(p)) this.#nodes.delete(p);
    for (const p of this.#xattrs.keys()) if (gone(p)) this.#xattrs.delete(p);
    for (const p of this.#dirTimes.keys()) if (gone(p)) this.#dirTimes.delete(p);
    if (!this.#overlay) {
      const rel = abs.slice(this.#root.length + 1);
      const relUnder = `${rel}/`;
      this.#opaque = new Set([...this.#opaque].filter((p) => p !== rel && !p.startsWith(relUnder)));
    }
  }

  #meta(h: TarHeader, abs: string, isDir: boolean): void {
    lchownSync(fp(abs), h.uid, h.gid);
    if (isDir) chmodSync(fp(abs), h.mode & 0o7777);
  }

  #queueXattrs(h: TarHeader, abs: string): void {
    for (const [name, value] of h.xattrs) {
      if (name.startsWith("trusted.overlay.")) continue; // overlayfs's own: never from a layer
      if (!/^[a-z]+\.[\x21-\x3c\x3e-\x5b\x5d-\x7e]{1,250}$/.test(name))
        throw refuse(h.name, `invalid xattr name ${JSON.stringify(name)}`);
      this.#setXattr(abs, name, value);
    }
  }

  #setXattr(abs: string, name: string, value: Buffer): void {
    let m = this.#xattrs.get(abs);
    if (!m) {
      m = new Map();
      this.#xattrs.set(abs, m);
    }
    m.set(name, value);
  }

  async #flushNodes(): Promise<void> {
    const todo = [...this.#nodes];
    this.#nodes.clear();
    const one = async ([abs, n]: [string, PendingNode]) => {
      const path = Buffer.from(abs, "latin1").toString("utf8");
      if (!Buffer.from(path, "utf8").equals(fp(abs)))
        throw refuse(n.entry, "device, fifo and whiteout names must be UTF-8");
      const args = n.kind === "p" ? [path, "p"] : [path, n.kind, String(n.major), String(n.minor)];
      const r = await execa("mknod", ["-m", "0600", ...args], { reject: false, stdin: "ignore" });
      if (r.exitCode !== 0) throw refuse(n.entry, `mknod: ${String(r.stderr).trim()}`);
      lchownSync(fp(abs), n.uid, n.gid);
      chmodSync(fp(abs), n.mode);
      if (n.mtime !== undefined) lutimesSync(fp(abs), n.mtime, n.mtime);
    };
    for (let i = 0; i < todo.length; i += nodeConcurrency)
      await Promise.all(todo.slice(i, i + nodeConcurrency).map(one));
  }

  #applyOpaque(rel: string): void {
    const abs = this.#abs(rel);
    const st = lstatOrUndefined(abs);
    if (!st?.isDirectory()) return;
    for (const nameBuf of readdirSync(fp(abs), { encoding: "buffer" })) {
      const childRel = `${rel === "" ? "" : `${rel}/`}${nameBuf.toString("latin1")}`;
      const childAbs = this.#abs(childRel);
      const cst = lstatOrUndefined(childAbs);
      if (!cst) continue;
      if (!this.#written.has(childRel)) this.#remove(childAbs, cst);
      else if (cst.isDirectory()) this.#applyOpaque(childRel);
    }
  }

  async #flushXattrs(): Promise<void> {
    if (this.#xattrs.size === 0) return;
    const lines: string[] = [];
    for (const [abs, attrs] of this.#xattrs) {
      lines.push(`# file: ${quotePath(abs)}`);
      for (const [name, value] of attrs) lines.push(`${name}=0x${value.toString("hex")}`);
      lines.push("");
    }
    const r = await execa("setfattr", ["-h", "--restore=-"], {
      input: `${lines.join("\n")}\n`,
      reject: false,
    });
    if (r.exitCode !== 0)
      throw new TtrpcError(Code.InvalidArgument, `layer xattrs could not be set: ${String(r.stderr).trim()}`);
  }

  async finish(): Promise<void> {
    await this.#flushNodes();
    if (!this.#overlay) for (const rel of this.#opaque) this.#applyOpaque(rel);
    await this.#flushXattrs();
    const times = [...this.#dirTimes].reverse();
    for (const [abs, t] of times) lutimesSync(fp(abs), t, t);
  }
}

/** A path for setfattr's restore format: bytes outside printable ASCII, and "\", as \ooo. */
function quotePath(bin: string): string {
  let out = "";
  for (let i = 0; i < bin.length; i++) {
    const c = bin.charCodeAt(i);
    out += c <= 0x20 || c >= 0x7f || c === 0x5c ? `\\${c.toString(8).padStart(3, "0")}` : bin[i];
  }
  return out;
}
