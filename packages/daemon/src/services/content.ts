// containerd.services.content.v1.Content, transport-free, on the daemon's content store
// (@tsrunc/images ContentStore, shared by every namespace) and its per-namespace labels
// (images/content-meta.ts). What ctr's client does with it (content/proxy in containerd 1.6): a
// pull or import opens a Write stream per blob (STAT with ref, total and expected first, then
// WRITE/COMMIT), treats AlreadyExists as "have it", sets labels with Update, reads manifests
// and configs with Read (a ReaderAt: offset + size per call).
//
// Ingests are namespaced (the store's ref is "<namespace>/<ref>": another namespace's ingests are
// invisible); blobs are not: Info, Read and List see every blob, and Delete refuses a blob an image
// record of another namespace reaches (FailedPrecondition) instead of taking it from under it.
// Under a lease (`containerd-lease` metadata) every blob written or found existing, and every
// ingest opened, is held by it.

import type { IngestState, IngestWriter } from "@tsrunc/images";
import { digestHex } from "@tsrunc/images";
import type { contentapi } from "@tsrunc/protocol/daemon";
import { timestampFromDate } from "@tsrunc/protocol/shim";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { type ContentMetaRow, checkContentLabels } from "../images/content-meta.js";
import type { Lease } from "../images/leases.js";
import type { ImageSystem } from "../images/system.js";
import { maskLabels } from "../label-rules.js";
import { type FieldGetter, mapField, parseFilters } from "../store/index.js";
import type { LeasedScope } from "./leases.js";
import type { CallScope } from "./tasks.js";

/** Finds a namespace's live lease by id (undefined when there is none). */
export type LeaseLookup = (namespace: string, id: string) => Lease | undefined;

const WriteAction = { stat: 0, write: 1, commit: 2 } as const;

/** Bounds a List batch: 100 infos as containerd, or fewer when their labels are large. */
const listBatchBytes = 1024 * 1024;
/** Read answers in pieces of at most this (ttrpc frames stop at 4 MiB). */
const readChunk = 1024 * 1024;

function checkDigest(digest: string | undefined): string {
  if (!digest) throw new TtrpcError(Code.InvalidArgument, "digest must not be empty");
  try {
    digestHex(digest);
  } catch {
    throw new TtrpcError(Code.InvalidArgument, `${JSON.stringify(digest.slice(0, 100))} failed validation`);
  }
  return digest;
}

function checkRef(ref: string | undefined): string {
  if (!ref) throw new TtrpcError(Code.InvalidArgument, "ref must not be empty");
  if (ref.length > 4096 || ref.includes("\0"))
    throw new TtrpcError(Code.InvalidArgument, "invalid ref: want at most 4096 characters, no NUL");
  return ref;
}

/**
 * The stream's next message, or Canceled as soon as the call is gone: a client that vanishes
 * between two messages must not keep its ingest locked (the transport stops reading our answers,
 * so nothing else would end this stream).
 */
function nextOrCanceled<T>(
  it: AsyncIterator<T>,
  signal: AbortSignal | undefined,
): Promise<IteratorResult<T>> {
  if (!signal) return it.next();
  if (signal.aborted) return Promise.reject(new TtrpcError(Code.Canceled, "write canceled"));
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(new TtrpcError(Code.Canceled, "write canceled"));
    signal.addEventListener("abort", onAbort, { once: true });
    it.next().then(
      (r) => {
        signal.removeEventListener("abort", onAbort);
        resolve(r);
      },
      (err: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(err);
      },
    );
  });
}

function contentFields(i: contentapi.Info): FieldGetter {
  return (path) => {
    switch (path[0]) {
      case "digest":
        return i.digest;
      case "size":
        return String(i.size);
      case "labels":
        return mapField(path.slice(1), i.labels);
      default:
        return undefined;
    }
  };
}

function statusFields(st: contentapi.Status): FieldGetter {
  return (path) => {
    switch (path[0]) {
      case "ref":
        return st.ref;
      case "expected":
        return st.expected || undefined;
      default:
        return undefined;
    }
  };
}

export class ContentApi {
  constructor(
    private readonly sys: ImageSystem,
    private readonly leases?: LeaseLookup,
  ) {}

  /** The store's ref of a namespace's ingest. */
  #ingestRef(namespace: string, ref: string): string {
    return `${namespace}/${checkRef(ref)}`;
  }

  /** The lease a call names; NotFound when it names one that does not exist. */
  #lease(s: LeasedScope): Lease | undefined {
    if (!s.lease || !this.leases) return undefined;
    const lease = this.leases(s.namespace, s.lease);
    if (!lease || lease.released)
      throw new TtrpcError(Code.NotFound, `lease ${JSON.stringify(s.lease)} does not exist`);
    return lease;
  }

  #toInfo(
    digest: string,
    size: number,
    committedAt: Date,
    meta: ContentMetaRow | undefined,
  ): contentapi.Info {
    return {
      digest,
      size,
      createdAt: timestampFromDate(meta?.createdAt ?? committedAt),
      updatedAt: timestampFromDate(meta?.updatedAt ?? committedAt),
      labels: { ...(meta?.labels ?? {}) },
    };
  }

  async #info(namespace: string, digest: string): Promise<contentapi.Info> {
    const st = await this.sys.content.stat(digest);
    if (!st) throw new TtrpcError(Code.NotFound, `content digest ${digest}: not found`);
    return this.#toInfo(digest, st.size, st.committedAt, this.sys.contentMeta.get(namespace, digest));
  }

  async info(s: CallScope, req: contentapi.InfoRequest): Promise<contentapi.InfoResponse> {
    return { info: await this.#info(s.namespace, checkDigest(req.digest)) };
  }

  /** Only labels change: "labels" replaces them all, "labels.KEY" one (removed when empty). */
  async update(s: CallScope, req: contentapi.UpdateRequest): Promise<contentapi.UpdateResponse> {
    const digest = checkDigest(req.info?.digest);
    const cur = await this.#info(s.namespace, digest);
    const labels = maskLabels(
      cur.labels,
      req.info?.labels ?? {},
      req.updateMask?.paths ?? [],
      `content info ${JSON.stringify(digest)}`,
    );
    this.sys.contentMeta.set(s.namespace, digest, labels);
    return { info: await this.#info(s.namespace, digest) };
  }

  async *list(
    s: CallScope,
    req: contentapi.ListContentRequest,
  ): AsyncGenerator<contentapi.ListContentResponse> {
    const match = parseFilters(req.filters);
    const meta = this.sys.contentMeta.all(s.namespace);
    let batch: contentapi.Info[] = [];
    let bytes = 0;
    for (const blob of await this.sys.content.list()) {
      if (s.signal?.aborted) throw new TtrpcError(Code.Canceled, "list canceled");
      const st = await this.sys.content.stat(blob.digest);
      if (!st) continue; // removed meanwhile
      const info = this.#toInfo(blob.digest, st.size, st.committedAt, meta.get(blob.digest));
      if (!match(contentFields(info))) continue;
      batch.push(info);
      bytes += 128;
      for (const [k, v] of Object.entries(info.labels)) bytes += k.length + v.length + 8;
      if (batch.length >= 100 || bytes >= listBatchBytes) {
        yield { info: batch };
        batch = [];
        bytes = 0;
      }
    }
    if (batch.length) yield { info: batch };
  }

  async delete(s: CallScope, req: contentapi.DeleteContentRequest): Promise<void> {
    const digest = checkDigest(req.digest);
    if (!(await this.sys.content.has(digest)))
      throw new TtrpcError(Code.NotFound, `content digest ${digest}: not found`);
    const elsewhere = await this.sys.gc.reachable((ns) => ns !== s.namespace);
    if (elsewhere.has(digest))
      throw new TtrpcError(
        Code.FailedPrecondition,
        `content ${digest} is used by an image of another namespace (blobs are shared between namespaces here): not deleted`,
      );
    await this.sys.content.delete(digest);
    this.sys.contentMeta.forget(digest);
  }

  async *read(
    s: CallScope,
    req: contentapi.ReadContentRequest,
  ): AsyncGenerator<contentapi.ReadContentResponse> {
    const digest = checkDigest(req.digest);
    const st = await this.sys.content.stat(digest);
    if (!st) throw new TtrpcError(Code.NotFound, `content digest ${digest}: not found`);
    const offset = Math.max(0, req.offset);
    if (offset > st.size) throw new TtrpcError(Code.OutOfRange, `read past object length ${st.size} bytes`);
    const size = req.size <= 0 || offset + req.size > st.size ? st.size - offset : req.size;
    if (size === 0) return;
    const stream = this.sys.content.openRead(digest, { start: offset });
    let pos = offset;
    let left = size;
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        if (s.signal?.aborted) throw new TtrpcError(Code.Canceled, "read canceled");
        let piece = chunk.length > left ? chunk.subarray(0, left) : chunk;
        while (piece.length > 0) {
          const part = piece.subarray(0, readChunk);
          yield { offset: pos, data: part };
          pos += part.length;
          left -= part.length;
          piece = piece.subarray(part.length);
        }
        if (left <= 0) break;
      }
    } finally {
      stream.destroy();
    }
    if (left > 0)
      throw new TtrpcError(Code.DataLoss, `content ${digest} ended ${left} bytes early (changed while read)`);
  }

  #status(namespace: string, st: IngestState): contentapi.Status {
    return {
      startedAt: timestampFromDate(st.startedAt),
      updatedAt: timestampFromDate(st.updatedAt),
      ref: st.ref.slice(namespace.length + 1),
      offset: st.offset,
      total: st.expected.size ?? 0,
      expected: st.expected.digest ?? "",
    };
  }

  async status(s: CallScope, req: contentapi.StatusRequest): Promise<contentapi.StatusResponse> {
    const st = await this.sys.content.ingestStatus(this.#ingestRef(s.namespace, req.ref));
    if (!st) throw new TtrpcError(Code.NotFound, `ingest ref ${JSON.stringify(req.ref)}: not found`);
    return { status: this.#status(s.namespace, st) };
  }

  async listStatuses(
    s: CallScope,
    req: contentapi.ListStatusesRequest,
  ): Promise<contentapi.ListStatusesResponse> {
    const match = parseFilters(req.filters);
    const prefix = `${s.namespace}/`;
    const statuses = (await this.sys.content.ingestStates())
      .filter((st) => st.ref.startsWith(prefix))
      .map((st) => this.#status(s.namespace, st))
      .filter((st) => match(statusFields(st)));
    return { statuses };
  }

  async abort(s: CallScope, req: contentapi.AbortRequest): Promise<void> {
    await this.sys.content.abortIngest(this.#ingestRef(s.namespace, req.ref));
  }

  /**
   * The Write stream, as containerd's server answers it: each message gets one answer with the
   * ingest's offset; the first must name the ref; an expected digest already stored ends the
   * stream with AlreadyExists (and the blob is held by the call's lease); WRITE appends at the
   * current offset (OutOfRange elsewhere; offset 0 starts over); COMMIT checks total and
   * expected (FailedPrecondition), stores the blob with its labels and ends the stream. An
   * unfinished ingest is kept for a later Write of the same ref to resume.
   */
  async *write(
    s: LeasedScope,
    reqs: AsyncIterable<contentapi.WriteContentRequest>,
  ): AsyncGenerator<contentapi.WriteContentResponse> {
    const it = reqs[Symbol.asyncIterator]();
    const first = await nextOrCanceled(it, s.signal);
    if (first.done) return;
    let req = first.value;
    const ref = checkRef(req.ref);
    const storeRef = this.#ingestRef(s.namespace, ref);
    const lease = this.#lease(s);
    let total = req.total > 0 ? req.total : undefined;
    let expected = req.expected ? checkDigest(req.expected) : undefined;
    const exists = async (digest: string) => {
      if (!(await this.sys.content.has(digest))) return false;
      lease?.addBlobs(digest);
      return true;
    };
    if (expected && (await exists(expected)))
      throw new TtrpcError(Code.AlreadyExists, `content ${expected}: already exists`);
    lease?.addIngests(storeRef);
    const w: IngestWriter = await this.sys.content.ingest(storeRef, {
      ...(expected ? { digest: expected } : {}),
      ...(total !== undefined ? { size: total } : {}),
    });
    let done = false;
    try {
      for (;;) {
        if (s.signal?.aborted) throw new TtrpcError(Code.Canceled, "write canceled");
        const msg: contentapi.WriteContentResponse = {
          action: req.action,
          startedAt: timestampFromDate(w.startedAt),
          updatedAt: timestampFromDate(w.updatedAt),
          offset: w.offset,
          total: total ?? 0,
          digest: "",
        };
        if (req.expected) {
          expected = checkDigest(req.expected);
          if (await exists(expected)) {
            await w.abort();
            done = true;
            throw new TtrpcError(Code.AlreadyExists, `blob with expected digest ${expected} exists`);
          }
        }
        if (req.total > 0) total = req.total;
        msg.total = total ?? 0;
        switch (req.action) {
          case WriteAction.stat:
            break;
          case WriteAction.write:
          case WriteAction.commit: {
            if (req.offset < 0)
              throw new TtrpcError(Code.InvalidArgument, `write offset ${req.offset} is negative`);
            if (req.offset > 0 && req.offset !== w.offset)
              throw new TtrpcError(
                Code.OutOfRange,
                `write @${req.offset} must occur at current offset ${w.offset}`,
              );
            if (req.offset === 0 && w.offset > 0) await w.restart();
            if (req.data.length > 0) await w.write(req.data);
            msg.offset = w.offset;
            if (req.action === WriteAction.commit) {
              const labels = checkContentLabels({ ...req.labels });
              const committed = await w.commitAs({
                ...(expected ? { digest: expected } : {}),
                ...(total !== undefined ? { size: total } : {}),
              });
              done = true;
              lease?.addBlobs(committed.digest);
              if (committed.existed)
                throw new TtrpcError(Code.AlreadyExists, `content ${committed.digest}: already exists`);
              this.sys.contentMeta.set(s.namespace, committed.digest, labels);
              msg.digest = committed.digest;
              msg.offset = committed.size;
            }
            break;
          }
          default:
            throw new TtrpcError(Code.InvalidArgument, `unknown write action ${req.action}`);
        }
        msg.updatedAt = timestampFromDate(w.updatedAt);
        yield msg;
        if (req.action === WriteAction.commit) return;
        const next = await nextOrCanceled(it, s.signal);
        if (next.done) return;
        req = next.value;
      }
    } finally {
      if (!done) await w.close().catch(() => {});
    }
  }
}
