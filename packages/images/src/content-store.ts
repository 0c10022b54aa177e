// The content store: blobs addressed by digest under <root>/blobs/sha256/<hex>, written only
// through an ingest area <root>/ingest/<sha256(ref)>/{data,ref,expected}. A blob becomes visible
// only once its bytes have been hashed and counted while streaming, fsynced, renamed into blobs/
// and the directory fsynced, so a crash at any point leaves either no blob or a complete one; an
// interrupted ingest is resumed by the next writer of the same ref (its bytes are re-read to
// rebuild the hash state). One process owns a store at a time (the daemon holds a root lock);
// inside it, a ref is held by one writer at a time.

import { createHash, type Hash, randomBytes } from "node:crypto";
import { constants as fsc } from "node:fs";
import {
  type FileHandle,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  unlink,
  utimes,
} from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { Code, TtrpcError } from "@tsrunc/ttrpc/status";
import { checkSize, digestHex } from "./digest.js";

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  "os.version"?: string;
  "os.features"?: string[];
}

/** An OCI content descriptor. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  urls?: string[];
  artifactType?: string;
}

export interface BlobInfo {
  digest: string;
  size: number;
}

export interface IngestStatus {
  ref: string;
  /** Bytes in the ingest so far. */
  offset: number;
  /** digest "" and size -1 where the ingest's writer did not know them. */
  expected: BlobInfo;
  updatedAt: Date;
}

/** What an ingest of `ContentStore.ingest` knows of its blob beforehand (either may be unknown). */
export interface IngestExpected {
  digest?: string;
  size?: number;
}

/** One ingest, by its ref (`ContentStore.ingestStatus`). */
export interface IngestState {
  ref: string;
  offset: number;
  expected: IngestExpected;
  startedAt: Date;
  updatedAt: Date;
}

/** A committed blob, and whether the store held it already (the ingest's bytes were dropped). */
export interface Committed extends BlobInfo {
  existed: boolean;
}

/** A resumable writer of one blob; see ContentStore.writer. */
export interface ContentWriter {
  /** Bytes already in the ingest (from an earlier, interrupted write of the same ref) plus those written. */
  readonly offset: number;
  /** Appends a chunk. Writing past the expected size discards the ingest (FailedPrecondition). */
  write(chunk: Uint8Array): Promise<void>;
  /**
   * Verifies size and digest, then makes the blob visible. A short ingest is FailedPrecondition and
   * stays for a resume; a digest mismatch is FailedPrecondition and discards the ingest. Committing
   * a blob the store already holds succeeds without changing it.
   */
  commit(): Promise<void>;
  /** Closes the writer and removes the ingest. */
  abort(): Promise<void>;
}

/**
 * A writer of `ContentStore.ingest`: what it expects may be partly unknown until `commitAs`, and
 * it may start over.
 */
export interface IngestWriter extends ContentWriter {
  readonly expected: IngestExpected;
  readonly startedAt: Date;
  readonly updatedAt: Date;
  /** Empties the ingest (a client writing from offset 0 again). */
  restart(): Promise<void>;
  /**
   * Commits with what is known now (`size`, `digest` given here win over the ingest's): a short
   * or long ingest is FailedPrecondition and stays; a digest mismatch is FailedPrecondition and
   * discards it. Returns the blob, `existed` when the store already held it.
   */
  commitAs(final?: IngestExpected): Promise<Committed>;
  /** Closes the writer, keeping the ingest for a later writer of the ref. */
  close(): Promise<void>;
}

/** Bounded reads (manifests, configs, indexes) default to this. */
export const defaultReadLimit = 16 * 1024 * 1024;

const hex64 = /^[0-9a-f]{64}$/;
const rehashChunk = 1024 * 1024;

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

async function fsyncDir(path: string): Promise<void> {
  const fh = await open(path, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function checkRef(ref: unknown): string {
  if (typeof ref !== "string" || ref.length === 0 || ref.length > 4096 || ref.includes("\0"))
    throw new TtrpcError(Code.InvalidArgument, "invalid ingest ref: want 1 to 4096 characters, no NUL");
  return ref;
}

function sameExpected(a: unknown, b: IngestExpected): boolean {
  const o = a as IngestExpected | null;
  return typeof o === "object" && o !== null && o.digest === b.digest && o.size === b.size;
}

const ingestKey = (ref: string) => createHash("sha256").update(ref).digest("hex");

/** An ingest directory's state; undefined when it is half-made, gone, or not `ref`'s. */
async function readIngest(dir: string, ref?: string): Promise<IngestState | undefined> {
  try {
    const found = await readFile(join(dir, "ref"), "utf8");
    if (ref !== undefined && found !== ref) return undefined;
    const raw = JSON.parse(await readFile(join(dir, "expected"), "utf8")) as IngestExpected;
    const expected: IngestExpected = {};
    if (typeof raw.digest === "string") expected.digest = raw.digest;
    if (typeof raw.size === "number") expected.size = raw.size;
    const [d, data] = await Promise.all([stat(dir), stat(join(dir, "data"))]);
    return {
      ref: found,
      offset: data.size,
      expected,
      startedAt: d.birthtimeMs > 0 ? d.birthtime : d.ctime,
      updatedAt: data.mtime,
    };
  } catch {
    return undefined;
  }
}

export class ContentStore {
  readonly root: string;
  readonly #blobs: string;
  readonly #ingest: string;
  /** Ingest keys held by a live writer of this process. */
  readonly #locked = new Set<string>();

  private constructor(root: string) {
    this.root = root;
    this.#blobs = join(root, "blobs", "sha256");
    this.#ingest = join(root, "ingest");
  }

  /** Opens (creating if needed) the store at `root`. */
  static async open(root: string): Promise<ContentStore> {
    const store = new ContentStore(root);
    await mkdir(store.#blobs, { recursive: true, mode: 0o700 });
    await mkdir(store.#ingest, { recursive: true, mode: 0o700 });
    return store;
  }

  /** Where a blob lives (whether or not it exists). InvalidArgument for a malformed digest. */
  blobPath(digest: string): string {
    return join(this.#blobs, digestHex(digest));
  }

  async has(digest: string): Promise<boolean> {
    return (await this.info(digest)) !== undefined;
  }

  async info(digest: string): Promise<BlobInfo | undefined> {
    const path = this.blobPath(digest);
    try {
      const st = await stat(path);
      return st.isFile() ? { digest, size: st.size } : undefined;
    } catch (err) {
      if (errnoCode(err) === "ENOENT") return undefined;
      throw err;
    }
  }

  /**
   * Reads a whole blob that is at most `maxBytes` (default 16 MiB) long, checking its digest:
   * for manifests, indexes and configs. NotFound, ResourceExhausted when larger, DataLoss when
   * the bytes no longer match their digest.
   */
  async readBlob(digest: string, maxBytes = defaultReadLimit): Promise<Buffer> {
    const path = this.blobPath(digest);
    let fh: FileHandle;
    try {
      fh = await open(path, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    } catch (err) {
      if (errnoCode(err) === "ENOENT") throw new TtrpcError(Code.NotFound, `content ${digest}: not found`);
      throw err;
    }
    try {
      const { size } = await fh.stat();
      if (size > maxBytes)
        throw new TtrpcError(
          Code.ResourceExhausted,
          `content ${digest} is ${size} bytes, more than the ${maxBytes} allowed for this read`,
        );
      const data = await fh.readFile();
      if (data.length > maxBytes)
        throw new TtrpcError(Code.ResourceExhausted, `content ${digest} grew past ${maxBytes} bytes`);
      if (`sha256:${createHash("sha256").update(data).digest("hex")}` !== digest)
        throw new TtrpcError(Code.DataLoss, `content ${digest}: stored bytes do not match the digest`);
      return data;
    } finally {
      await fh.close();
    }
  }

  /**
   * A stream of a blob's bytes (from `start`, default 0). A malformed digest throws at once;
   * a missing blob makes the stream fail with NotFound.
   */
  openRead(digest: string, options: { start?: number } = {}): Readable {
    const path = this.blobPath(digest);
    return new BlobReadStream(path, digest, options.start ?? 0);
  }

  /**
   * A writer for the blob `expected`, keyed by `ref` (any string naming the transfer, e.g.
   * "layer-sha256:…"). If an earlier writer of the same ref and the same expected blob was
   * interrupted, its bytes are kept: `offset` says how many, and the caller continues from
   * there. Unavailable while another writer of this store holds the ref.
   */
  async writer(ref: string, expected: BlobInfo): Promise<ContentWriter> {
    digestHex(expected.digest);
    checkSize(expected.size);
    return this.ingest(ref, { digest: expected.digest, size: expected.size });
  }

  /**
   * A writer for the ingest `ref`, as containerd's Content.Write opens one: the blob's digest or
   * size may be unknown until commit. An interrupted ingest of the same ref that expected the same
   * is resumed (its `offset`); one that expected something else is emptied. Unavailable while
   * another writer holds the ref.
   */
  async ingest(ref: string, expected: IngestExpected = {}): Promise<IngestWriter> {
    checkRef(ref);
    const want: IngestExpected = {};
    if (expected.digest !== undefined && expected.digest !== "") {
      digestHex(expected.digest);
      want.digest = expected.digest;
    }
    if (expected.size !== undefined) {
      checkSize(expected.size);
      want.size = expected.size;
    }
    const key = ingestKey(ref);
    if (this.#locked.has(key))
      throw new TtrpcError(Code.Unavailable, `ingest ref ${JSON.stringify(ref)} is locked`);
    this.#locked.add(key);
    const dir = join(this.#ingest, key);
    const release = () => this.#locked.delete(key);
    let fh: FileHandle | undefined;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      let previous: unknown;
      try {
        previous = JSON.parse(await readFile(join(dir, "expected"), "utf8"));
      } catch {
        previous = undefined;
      }
      const dataPath = join(dir, "data");
      fh = await open(dataPath, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600);
      const hash = createHash("sha256");
      let offset = 0;
      const resumable = sameExpected(previous, want);
      const { size: existing } = await fh.stat();
      if (resumable && (want.size === undefined || existing <= want.size)) {
        offset = await rehash(fh, existing, hash);
        const now = new Date();
        await utimes(dataPath, now, now);
      } else {
        await fh.truncate(0);
        await writeSmall(join(dir, "ref"), ref);
        await writeSmall(join(dir, "expected"), JSON.stringify(want));
      }
      const dirStat = await stat(dir);
      const startedAt = dirStat.birthtimeMs > 0 ? dirStat.birthtime : dirStat.ctime;
      return new Ingest(fh, hash, offset, want, dir, startedAt, this, release);
    } catch (err) {
      await fh?.close().catch(() => {});
      release();
      throw err;
    }
  }

  /** The ingest of `ref`, undefined when there is none. */
  async ingestStatus(ref: string): Promise<IngestState | undefined> {
    checkRef(ref);
    return readIngest(join(this.#ingest, ingestKey(ref)), ref);
  }

  /** Every ingest with its ref (what Content.ListStatuses shows). */
  async ingestStates(): Promise<IngestState[]> {
    const out: IngestState[] = [];
    for (const name of await readdir(this.#ingest)) {
      const st = await readIngest(join(this.#ingest, name));
      if (st) out.push(st);
    }
    return out.sort((a, b) => (a.ref < b.ref ? -1 : a.ref > b.ref ? 1 : 0));
  }

  /** Removes the ingest of `ref`: NotFound when there is none, Unavailable while a writer holds it. */
  async abortIngest(ref: string): Promise<void> {
    checkRef(ref);
    const key = ingestKey(ref);
    if (this.#locked.has(key))
      throw new TtrpcError(Code.Unavailable, `ingest ref ${JSON.stringify(ref)} is locked`);
    const dir = join(this.#ingest, key);
    if (!(await readIngest(dir, ref)))
      throw new TtrpcError(Code.NotFound, `ingest ref ${JSON.stringify(ref)}: not found`);
    await rm(dir, { recursive: true, force: true });
  }

  /** A blob's size and when it was committed (its inode's change time); undefined when absent. */
  async stat(digest: string): Promise<(BlobInfo & { committedAt: Date }) | undefined> {
    try {
      const st = await stat(this.blobPath(digest));
      return st.isFile() ? { digest, size: st.size, committedAt: st.ctime } : undefined;
    } catch (err) {
      if (errnoCode(err) === "ENOENT") return undefined;
      throw err;
    }
  }

  /** @internal Moves a verified ingest's data into blobs/ unless the blob is there; true when it was. */
  async _install(dataPath: string, digest: string): Promise<boolean> {
    const target = this.blobPath(digest);
    let exists = false;
    try {
      exists = (await stat(target)).isFile();
    } catch (err) {
      if (errnoCode(err) !== "ENOENT") throw err;
    }
    if (!exists) {
      await rename(dataPath, target);
      await fsyncDir(this.#blobs);
    }
    return exists;
  }

  /** Writes a small blob held in memory (size and digest checked first: FailedPrecondition). */
  async writeBlob(expected: BlobInfo, data: Uint8Array): Promise<void> {
    digestHex(expected.digest);
    checkSize(expected.size);
    if (data.length !== expected.size)
      throw new TtrpcError(
        Code.FailedPrecondition,
        `unexpected size ${data.length} for ${expected.digest}, expected ${expected.size}`,
      );
    const actual = `sha256:${createHash("sha256").update(data).digest("hex")}`;
    if (actual !== expected.digest)
      throw new TtrpcError(
        Code.FailedPrecondition,
        `unexpected digest ${actual}, expected ${expected.digest}`,
      );
    if (await this.has(expected.digest)) return;
    const w = await this.writer(`write-blob-${expected.digest}-${randomBytes(6).toString("hex")}`, expected);
    try {
      await w.write(data);
      await w.commit();
    } catch (err) {
      await w.abort().catch(() => {});
      throw err;
    }
  }

  /**
   * Stores a stream whose digest is not known beforehand (an archive's files): the bytes go to a
   * fresh ingest, hashed and counted, then are committed under the digest they have. `expected`
   * fields that are given are checked (FailedPrecondition), `maxBytes` bounds the size
   * (ResourceExhausted). Returns the blob's digest and size.
   */
  async ingestStream(
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    options: { expected?: Partial<BlobInfo>; maxBytes?: number } = {},
  ): Promise<BlobInfo> {
    const { expected = {}, maxBytes } = options;
    if (expected.digest !== undefined) digestHex(expected.digest);
    if (expected.size !== undefined) checkSize(expected.size);
    const key = `stream-${randomBytes(12).toString("hex")}`;
    const dir = join(this.#ingest, key);
    // Locked before the directory exists: a GC's abortIngests that lists it while mkdir is still
    // settling must already see it held (it removed it under a running import: ENOENT on open).
    this.#locked.add(key);
    let fh: FileHandle | undefined;
    try {
      await mkdir(dir, { mode: 0o700 });
      const dataPath = join(dir, "data");
      fh = await open(dataPath, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
      const hash = createHash("sha256");
      let size = 0;
      for await (const chunk of source) {
        size += chunk.length;
        if (maxBytes !== undefined && size > maxBytes)
          throw new TtrpcError(Code.ResourceExhausted, `stream is larger than ${maxBytes} bytes`);
        if (expected.size !== undefined && size > expected.size)
          throw new TtrpcError(
            Code.FailedPrecondition,
            `stream is larger than the expected ${expected.size} bytes`,
          );
        hash.update(chunk);
        let done = 0;
        while (done < chunk.length) done += (await fh.write(chunk, done, chunk.length - done)).bytesWritten;
      }
      const digest = `sha256:${hash.digest("hex")}`;
      if (expected.size !== undefined && size !== expected.size)
        throw new TtrpcError(Code.FailedPrecondition, `unexpected size ${size}, expected ${expected.size}`);
      if (expected.digest !== undefined && digest !== expected.digest)
        throw new TtrpcError(
          Code.FailedPrecondition,
          `unexpected digest ${digest}, expected ${expected.digest}`,
        );
      await fh.chmod(0o444);
      await fh.sync();
      await fh.close();
      fh = undefined;
      const target = this.blobPath(digest);
      if (!(await this.has(digest))) {
        await rename(dataPath, target);
        await fsyncDir(this.#blobs);
      }
      return { digest, size };
    } finally {
      await fh?.close().catch(() => {});
      await rm(dir, { recursive: true, force: true });
      this.#locked.delete(key);
    }
  }

  /** Removes a blob. NotFound when absent. */
  async delete(digest: string): Promise<void> {
    const path = this.blobPath(digest);
    try {
      await unlink(path);
    } catch (err) {
      if (errnoCode(err) === "ENOENT") throw new TtrpcError(Code.NotFound, `content ${digest}: not found`);
      throw err;
    }
  }

  /** Every committed blob. */
  async list(): Promise<BlobInfo[]> {
    const names = (await readdir(this.#blobs)).filter((n) => hex64.test(n)).sort();
    const out: BlobInfo[] = [];
    for (const name of names) {
      try {
        const st = await stat(join(this.#blobs, name));
        if (st.isFile()) out.push({ digest: `sha256:${name}`, size: st.size });
      } catch (err) {
        if (errnoCode(err) !== "ENOENT") throw err;
      }
    }
    return out;
  }

  /** Every ingest in progress or interrupted (what a resumed pull would continue). */
  async listIngests(): Promise<IngestStatus[]> {
    const out: IngestStatus[] = [];
    for (const name of await readdir(this.#ingest)) {
      const dir = join(this.#ingest, name);
      try {
        const ref = await readFile(join(dir, "ref"), "utf8");
        const raw = JSON.parse(await readFile(join(dir, "expected"), "utf8")) as IngestExpected;
        const st = await stat(join(dir, "data"));
        const expected = { digest: raw.digest ?? "", size: raw.size ?? -1 };
        out.push({ ref, offset: st.size, expected, updatedAt: st.mtime });
      } catch {
        // half-created or being removed: not an ingest anyone can resume
      }
    }
    return out;
  }

  /**
   * Removes every ingest no live writer holds and `keep` does not want (it gets the ingest's ref,
   * undefined for a stream ingest or a half-created one): the daemon's GC, which keeps the
   * ingests of pulls it holds a lease for. Returns how many were removed.
   */
  async abortIngests(keep: (ref: string | undefined) => boolean): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.#ingest)) {
      if (this.#locked.has(name)) continue;
      const dir = join(this.#ingest, name);
      let ref: string | undefined;
      try {
        ref = await readFile(join(dir, "ref"), "utf8");
      } catch {
        ref = undefined;
      }
      if (keep(ref) || this.#locked.has(name)) continue;
      await rm(dir, { recursive: true, force: true });
      removed++;
    }
    return removed;
  }

  /**
   * Removes ingests not written to for `olderThanMs` (and any half-created ones as old), except
   * those a live writer holds. Returns how many were removed.
   */
  async abortStaleIngests(olderThanMs: number): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    for (const name of await readdir(this.#ingest)) {
      if (this.#locked.has(name)) continue;
      const dir = join(this.#ingest, name);
      let mtime: number;
      try {
        const dirSt = await stat(dir);
        mtime = dirSt.mtimeMs;
        try {
          mtime = Math.max(mtime, (await stat(join(dir, "data"))).mtimeMs);
        } catch {
          // no data file: judged by the directory's time
        }
      } catch {
        continue;
      }
      if (mtime > cutoff) continue;
      await rm(dir, { recursive: true, force: true });
      removed++;
    }
    return removed;
  }
}

async function writeSmall(path: string, text: string): Promise<void> {
  const fh = await open(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC | fsc.O_NOFOLLOW, 0o600);
  try {
    await fh.writeFile(text);
  } finally {
    await fh.close();
  }
}

/** Feeds the first `length` bytes of `fh` into `hash`; returns how many were read. */
async function rehash(fh: FileHandle, length: number, hash: Hash): Promise<number> {
  const buf = Buffer.allocUnsafe(Math.min(rehashChunk, Math.max(length, 1)));
  let pos = 0;
  while (pos < length) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, length - pos), pos);
    if (bytesRead === 0) break;
    hash.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  return pos;
}

class Ingest implements IngestWriter {
  #offset: number;
  #closed = false;
  #hash: Hash;
  #updatedAt = new Date();
  #queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly fh: FileHandle,
    hash: Hash,
    offset: number,
    readonly expected: IngestExpected,
    private readonly dir: string,
    readonly startedAt: Date,
    private readonly store: ContentStore,
    private readonly release: () => void,
  ) {
    this.#hash = hash;
    this.#offset = offset;
  }

  get offset(): number {
    return this.#offset;
  }

  get updatedAt(): Date {
    return this.#updatedAt;
  }

  write(chunk: Uint8Array): Promise<void> {
    return this.#serial(() => this.#write(chunk));
  }

  async commit(): Promise<void> {
    await this.commitAs();
  }

  commitAs(final: IngestExpected = {}): Promise<Committed> {
    return this.#serial(() => this.#commit(final));
  }

  restart(): Promise<void> {
    return this.#serial(async () => {
      this.#checkOpen();
      try {
        await this.fh.truncate(0);
      } catch (err) {
        await this.#close();
        throw err;
      }
      this.#hash = createHash("sha256");
      this.#offset = 0;
      this.#updatedAt = new Date();
    });
  }

  close(): Promise<void> {
    return this.#serial(() => this.#close());
  }

  abort(): Promise<void> {
    return this.#serial(async () => {
      if (this.#closed) return;
      await this.#discard();
    });
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  #what(): string {
    return this.expected.digest ? `content ${this.expected.digest}` : "ingest";
  }

  #checkOpen(): void {
    if (this.#closed) throw new TtrpcError(Code.FailedPrecondition, `writer of ${this.#what()} is closed`);
  }

  async #write(chunk: Uint8Array): Promise<void> {
    this.#checkOpen();
    const { size } = this.expected;
    if (size !== undefined && this.#offset + chunk.length > size) {
      const total = this.#offset + chunk.length;
      await this.#discard();
      throw new TtrpcError(
        Code.FailedPrecondition,
        `${this.#what()}: ${total} bytes written, more than the expected ${size}`,
      );
    }
    let done = 0;
    try {
      while (done < chunk.length) {
        const { bytesWritten } = await this.fh.write(chunk, done, chunk.length - done, this.#offset + done);
        done += bytesWritten;
      }
    } catch (err) {
      // The file may now hold bytes the hash has not seen: close; a new writer re-reads them.
      await this.#close();
      throw err;
    }
    this.#hash.update(chunk);
    this.#offset += chunk.length;
    this.#updatedAt = new Date();
  }

  async #commit(final: IngestExpected): Promise<Committed> {
    this.#checkOpen();
    const digest = final.digest || this.expected.digest;
    const size = final.size ?? this.expected.size;
    if (digest !== undefined) digestHex(digest);
    if (size !== undefined && this.#offset !== size) {
      await this.#close();
      throw new TtrpcError(
        Code.FailedPrecondition,
        `unexpected commit size ${this.#offset}, expected ${size}`,
      );
    }
    const actual = `sha256:${this.#hash.copy().digest("hex")}`;
    if (digest !== undefined && actual !== digest) {
      await this.#discard();
      throw new TtrpcError(Code.FailedPrecondition, `unexpected commit digest ${actual}, expected ${digest}`);
    }
    try {
      await this.fh.chmod(0o444);
      await this.fh.sync();
    } catch (err) {
      await this.#close();
      throw err;
    }
    // The ref stays locked until the blob is in place and the ingest gone: a writer of the same
    // ref let in between (a concurrent pull that looked for the blob a moment before) would start
    // a new ingest and fetch the whole blob again, or open files being removed.
    await this.#close(true);
    try {
      const existed = await this.store._install(join(this.dir, "data"), actual);
      await rm(this.dir, { recursive: true, force: true });
      return { digest: actual, size: this.#offset, existed };
    } finally {
      this.release();
    }
  }

  /** Closes the file; releases the ref too unless `keepLock` (the caller releases it after). */
  async #close(keepLock = false): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.fh.close();
    } finally {
      if (!keepLock) this.release();
    }
  }

  async #discard(): Promise<void> {
    const wasOpen = !this.#closed;
    await this.#close(true);
    try {
      await rm(this.dir, { recursive: true, force: true });
    } finally {
      if (wasOpen) this.release();
    }
  }
}

/** A blob's bytes as a stream; opening errors are mapped to status codes. */
class BlobReadStream extends Readable {
  #fh: FileHandle | undefined;
  #pos: number;

  constructor(
    private readonly path: string,
    private readonly digest: string,
    start: number,
  ) {
    super({ highWaterMark: 256 * 1024 });
    this.#pos = start;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    open(this.path, fsc.O_RDONLY | fsc.O_NOFOLLOW).then(
      (fh) => {
        this.#fh = fh;
        callback();
      },
      (err) =>
        callback(
          errnoCode(err) === "ENOENT"
            ? new TtrpcError(Code.NotFound, `content ${this.digest}: not found`)
            : err,
        ),
    );
  }

  override _read(size: number): void {
    const buf = Buffer.allocUnsafe(Math.max(size, 64 * 1024));
    this.#fh!.read(buf, 0, buf.length, this.#pos).then(
      ({ bytesRead }) => {
        if (bytesRead === 0) {
          this.push(null);
          return;
        }
        this.#pos += bytesRead;
        this.push(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead));
      },
      (err) => this.destroy(err),
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const fh = this.#fh;
    this.#fh = undefined;
    if (!fh) {
      callback(error);
      return;
    }
    fh.close().then(
      () => callback(error),
      () => callback(error),
    );
  }
}
