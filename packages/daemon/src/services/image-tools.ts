// tsrunc.services.images.v1.ImageTools, transport-free: what ctr does client-side (pull, import,
// export, the user of an image) done here, where the content store is. Every operation holds an
// in-memory lease (images/leases.ts) so that a GC meanwhile keeps what it is making; a pull also
// keeps a durable lease naming the blobs it fetched, so that after a crash the same pull resumes
// them instead of the boot GC removing them. The daemon never opens a path a client names: CAs
// come as PEM bytes, archives as a stream.

import { createHash, randomBytes, X509Certificate } from "node:crypto";
import { PassThrough } from "node:stream";
import {
  chainIds,
  exportArchive,
  importArchive,
  type OverlaySnapshotter,
  type ResolvedImage,
  resolveImage,
  type UnpackProgress,
  unpack,
} from "@tsrunc/images";
import {
  formatPlatform,
  formatReference,
  hostPlatform,
  type PullProgress as LibProgress,
  type Platform,
  parsePlatform,
  parseReference,
  pull,
  RegistryClient,
} from "@tsrunc/images/distribution";
import type { imagesapi, imagetools } from "@tsrunc/protocol/daemon";
import type { MessageInit as Init } from "@tsrunc/protocol/shim";
import { Code, isCode, TtrpcError } from "@tsrunc/ttrpc";
import type { EventExchange } from "../events/exchange.js";
import { readImageFile } from "../images/image-files.js";
import { resolveUser } from "../images/image-user.js";
import type { Lease } from "../images/leases.js";
import { AsyncQueue, Throttle } from "../images/progress-queue.js";
import { checkSnapshotter } from "../images/snapshotters.js";
import type { ImageSystem } from "../images/system.js";
import type { NewImage } from "../store/index.js";
import { publishImageEvent, toImage } from "./images.js";
import type { CallScope } from "./tasks.js";

type PullMessage = imagetools.PullProgress;

/** How long a durable pull lease keeps what an interrupted pull fetched (ctr's pull lease: 24 h). */
export const pullLeaseMs = 24 * 60 * 60 * 1000;
const exportChunk = 1024 * 1024;

function platformOf(spec: string): Platform {
  return spec ? parsePlatform(spec) : hostPlatform();
}

/** PEM bytes holding one or more certificates, each parsed now: a bad one is the caller's mistake. */
export function checkCaPem(pem: Uint8Array): Buffer {
  const text = Buffer.from(pem).toString("latin1");
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new TtrpcError(Code.InvalidArgument, "ca_pem holds no PEM certificate");
  for (const [i, b] of blocks.entries()) {
    try {
      new X509Certificate(b);
    } catch (err) {
      throw new TtrpcError(Code.InvalidArgument, `ca_pem certificate ${i + 1}: ${(err as Error).message}`);
    }
  }
  return Buffer.from(pem);
}

/** Errors after which a pull is worth running again: its durable lease stays. */
const resumable = (err: unknown) =>
  isCode(err, Code.Canceled) || isCode(err, Code.Unavailable) || isCode(err, Code.DeadlineExceeded);

export class ImageToolsApi {
  constructor(
    private readonly sys: ImageSystem,
    private readonly exchange?: EventExchange,
  ) {}

  /** Creates or updates a record, publishing /images/create or /images/update. */
  #put(init: NewImage) {
    const existed = this.sys.images.find(init.namespace, init.name) !== undefined;
    const rec = this.sys.images.put(init);
    publishImageEvent(this.exchange, init.namespace, existed ? "update" : "create", rec);
    return rec;
  }

  // ---- Pull -----------------------------------------------------------------------------------

  async *pull(s: CallScope, req: imagetools.PullRequest): AsyncGenerator<Init<imagetools.PullProgress>> {
    const ref = parseReference(req.ref);
    checkSnapshotter(req.snapshotter);
    if (req.caPem.length) checkCaPem(req.caPem);
    const platform = platformOf(req.platform);
    const queue = new AsyncQueue<PullMessage | Init<imagetools.PullProgress>>();
    const controller = new AbortController();
    const onAbort = () => controller.abort(s.signal?.reason);
    if (s.signal?.aborted) onAbort();
    else s.signal?.addEventListener("abort", onAbort, { once: true });
    let failure: unknown;
    const work = this.#pull(s.namespace, req, ref, platform, controller.signal, (m) => queue.push(m)).then(
      () => queue.end(),
      (err: unknown) => {
        failure = err;
        queue.end();
      },
    );
    try {
      for await (const m of queue.drain()) yield m;
      await work;
      if (failure !== undefined) throw failure;
    } finally {
      s.signal?.removeEventListener("abort", onAbort);
      // The client went away (the generator was closed early): stop the pull, keep its ingests.
      controller.abort(new TtrpcError(Code.Canceled, "pull canceled"));
      await work;
    }
  }

  async #pull(
    namespace: string,
    req: imagetools.PullRequest,
    ref: ReturnType<typeof parseReference>,
    platform: Platform,
    signal: AbortSignal,
    send: (m: Init<imagetools.PullProgress>) => void,
  ): Promise<void> {
    const { images, content, leases, gc, log } = this.sys;
    const name = formatReference(ref);
    const lease = leases.acquire(namespace);
    const durableId = `pull/${namespace}/${createHash("sha256")
      .update(`${name}\n${formatPlatform(platform)}`)
      .digest("hex")}`;
    images.putLease(durableId, namespace, new Date(Date.now() + pullLeaseMs));
    const hold = (digest: string) => {
      if (lease.blobs.has(digest)) return;
      lease.addBlobs(digest);
      images.addLeaseContent(durableId, [digest]);
    };
    const client = new RegistryClient({
      plainHttp: req.plainHttp,
      ...(req.caPem.length ? { ca: [Buffer.from(req.caPem)] } : {}),
      ...(req.username || req.password
        ? { credentials: { username: req.username, password: req.password } }
        : {}),
    });
    const throttle = new Throttle(100);
    const progress = (e: LibProgress) => {
      hold(e.digest);
      const status = e.status === "waiting" ? undefined : e.status;
      if (!status) return;
      if (status === "downloading" && !throttle.pass(e.digest, status)) return;
      throttle.pass(e.digest, status);
      send({ status, digest: e.digest, mediaType: e.mediaType, offset: e.done, total: e.total });
    };
    try {
      send({ status: "resolving" });
      const resolved = await client.resolve(ref, { signal });
      hold(resolved.descriptor.digest);
      send({
        status: "resolved",
        digest: resolved.descriptor.digest,
        mediaType: resolved.descriptor.mediaType,
        total: resolved.descriptor.size,
      });
      const concurrency = req.maxConcurrentDownloads > 0 ? Math.min(req.maxConcurrentDownloads, 16) : 3;
      // Twice at most: a blob that existed when the pull looked may have been collected by a GC
      // that ran just then; the second round fetches it again (see README, garbage collection).
      for (let round = 0; ; round++) {
        const result = await pull(ref, {
          store: content,
          client,
          platform,
          concurrency,
          signal,
          onProgress: progress,
        });
        hold(result.target.digest);
        const image = await resolveImage(content, result.target, platform);
        const missing = await this.#missingLayers(image);
        let ok = missing === undefined;
        if (ok && req.unpack)
          ok = await this.#unpack(namespace, result.target, platform, lease, signal, send);
        if (ok) {
          const rec = this.#put({
            namespace,
            name: result.name,
            target: {
              mediaType: result.target.mediaType,
              digest: result.target.digest,
              size: result.target.size,
              annotations: { ...(result.target.annotations ?? {}) },
            },
          });
          images.deleteLease(durableId);
          send({
            status: "complete",
            digest: rec.target.digest,
            mediaType: rec.target.mediaType,
            image: toImage(rec),
          });
          return;
        }
        if (round >= 1)
          throw new TtrpcError(Code.Aborted, `pull of ${name}: content was removed while pulling; try again`);
        log.info({ namespace, name, missing }, "pull: content collected meanwhile; pulling again");
      }
    } catch (err) {
      if (!resumable(err)) {
        images.deleteLease(durableId);
        gc.collectInBackground(`pull of ${name} failed`);
      }
      throw err;
    } finally {
      client.close();
      lease.release();
    }
  }

  async #missingLayers(image: ResolvedImage): Promise<string | undefined> {
    for (const l of image.manifest.layers) if (!(await this.sys.content.has(l.digest))) return l.digest;
    return undefined;
  }

  /**
   * Unpacks into the namespace's snapshotter (progress as "unpacking"/"unpacked" per layer);
   * false when a parent snapshot vanished under it (a GC), so the caller runs it again.
   */
  async #unpack(
    namespace: string,
    target: { mediaType: string; digest: string; size: number },
    platform: Platform,
    lease: Lease,
    signal: AbortSignal,
    send?: (m: Init<imagetools.PullProgress>) => void,
  ): Promise<boolean> {
    const sn = await this.sys.snapshotters.get(namespace);
    const onProgress = (e: UnpackProgress) => {
      lease.addSnapshots(e.chainId);
      if (!send) return;
      const layer = { digest: e.digest, offset: e.layer + 1, total: e.layers };
      send({ status: e.status === "applying" ? "unpacking" : "unpacked", ...layer });
    };
    try {
      const u = await unpack({
        store: this.sys.content,
        snapshotter: sn,
        target,
        platform,
        signal,
        onProgress,
      });
      lease.addSnapshots(...u.chainIds);
      for (const c of u.chainIds) if ((await this.#kind(sn, c)) !== "committed") return false;
      return true;
    } catch (err) {
      if (isCode(err, Code.NotFound) && /parent snapshot/.test((err as Error).message)) return false;
      throw err;
    }
  }

  async #kind(sn: OverlaySnapshotter, key: string): Promise<string | undefined> {
    try {
      return (await sn.stat(key)).kind;
    } catch (err) {
      if (isCode(err, Code.NotFound)) return undefined;
      throw err;
    }
  }

  // ---- Import ---------------------------------------------------------------------------------

  async import(
    s: CallScope,
    chunks: AsyncIterable<imagetools.ImportChunk>,
  ): Promise<Init<imagetools.ImportResponse>> {
    const it = chunks[Symbol.asyncIterator]();
    const first = await it.next();
    if (first.done) throw new TtrpcError(Code.InvalidArgument, "import: the stream held no archive");
    const options = first.value.options ?? { unpack: false, snapshotter: "", baseName: "", platform: "" };
    if (options.unpack) checkSnapshotter(options.snapshotter);
    const platform = platformOf(options.platform);
    async function* data(): AsyncGenerator<Uint8Array> {
      if (first.value?.data.length) yield first.value.data;
      for (;;) {
        const n = await it.next();
        if (n.done) return;
        if (n.value.data.length) yield n.value.data;
      }
    }
    const { content, gc } = this.sys;
    const lease = this.sys.leases.acquire(s.namespace);
    try {
      const result = await importArchive(data(), {
        store: leasedStore(content, lease),
        ...(options.baseName ? { baseName: options.baseName } : {}),
        ...(s.signal ? { signal: s.signal } : {}),
      });
      lease.addBlobs(...result.blobs.map((b) => b.digest));
      if (options.unpack)
        for (const img of result.images) {
          const ok = await this.#unpack(
            s.namespace,
            img.target,
            platform,
            lease,
            s.signal ?? new AbortController().signal,
          );
          if (!ok)
            throw new TtrpcError(
              Code.Aborted,
              `import of ${img.name}: content was removed while unpacking; try again`,
            );
        }
      const out: imagesapi.Image[] = [];
      for (const img of result.images) {
        const rec = this.#put({
          namespace: s.namespace,
          name: img.name,
          target: {
            mediaType: img.target.mediaType,
            digest: img.target.digest,
            size: img.target.size,
            annotations: { ...(img.target.annotations ?? {}) },
          },
        });
        out.push(toImage(rec));
      }
      return { images: out };
    } catch (err) {
      lease.release();
      gc.collectInBackground("import failed");
      throw err;
    } finally {
      lease.release();
      // Drain what the client still sends, so that its stream ends cleanly.
      if (!s.signal?.aborted) await it.return?.().catch(() => {});
    }
  }

  // ---- Export ---------------------------------------------------------------------------------

  async *export(s: CallScope, req: imagetools.ExportRequest): AsyncGenerator<Init<imagetools.ExportChunk>> {
    if (req.names.length === 0) throw new TtrpcError(Code.InvalidArgument, "export: no image names");
    const { images, content, leases } = this.sys;
    const lease = leases.acquire(s.namespace);
    try {
      const list: Array<{
        name: string;
        target: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> };
      }> = [];
      for (const n of req.names) {
        const rec = images.get(s.namespace, n);
        let target = { ...rec.target };
        lease.addBlobs(target.digest);
        if (req.platform) {
          const img = await resolveImage(content, rec.target, parsePlatform(req.platform));
          const m = img.manifestDescriptor;
          target = {
            mediaType: m.mediaType,
            digest: m.digest,
            size: m.size,
            annotations: { ...(m.annotations ?? {}) },
          };
          lease.addBlobs(m.digest, img.configDescriptor.digest, ...img.manifest.layers.map((l) => l.digest));
        }
        list.push({ name: rec.name, target });
      }
      const pass = new PassThrough({ highWaterMark: exportChunk });
      const controller = new AbortController();
      const writing = exportArchiveTo(list, pass, content, controller.signal);
      try {
        for await (const chunk of pass as AsyncIterable<Buffer>) {
          for (let off = 0; off < chunk.length; off += exportChunk)
            yield { data: chunk.subarray(off, off + exportChunk) };
        }
        await writing;
      } finally {
        controller.abort();
        pass.destroy();
        await writing.catch(() => {});
      }
    } finally {
      lease.release();
    }
  }

  // ---- Config ---------------------------------------------------------------------------------

  async config(s: CallScope, req: imagetools.ConfigRequest): Promise<Init<imagetools.ConfigResponse>> {
    const { images, content, leases } = this.sys;
    const rec = images.get(s.namespace, req.name);
    const platform = platformOf(req.platform);
    const lease = leases.acquire(s.namespace);
    const sn = await this.sys.snapshotters.get(s.namespace);
    const viewKey = `tsrunc-view-${randomBytes(6).toString("hex")}`;
    let viewMade = false;
    try {
      lease.addBlobs(rec.target.digest);
      const image = await resolveImage(content, rec.target, platform);
      lease.addBlobs(image.manifestDescriptor.digest, image.configDescriptor.digest);
      const configBytes = await content.readBlob(image.configDescriptor.digest);
      const top = await this.#ensureUnpacked(s.namespace, sn, rec.target, image, platform, lease, s.signal);
      lease.addSnapshots(viewKey);
      const mounts = await sn.view(viewKey, top);
      viewMade = true;
      const layers = layerDirs(mounts);
      const imageUser = String((image.config as { config?: { User?: unknown } }).config?.User ?? "");
      const user = await resolveUser(req.user, imageUser, (path) => readImageFile(layers, path));
      const m = image.manifestDescriptor;
      return {
        config: configBytes,
        chainId: top,
        uid: user.uid,
        gid: user.gid,
        additionalGids: user.additionalGids,
        manifest: {
          mediaType: m.mediaType,
          digest: m.digest,
          size: m.size,
          annotations: { ...(m.annotations ?? {}) },
        },
      };
    } finally {
      if (viewMade) await sn.remove(viewKey).catch(() => {});
      lease.release();
    }
  }

  /** The image's top chain id, unpacking first when its snapshots are not all there. */
  async #ensureUnpacked(
    namespace: string,
    sn: OverlaySnapshotter,
    target: { mediaType: string; digest: string; size: number },
    image: ResolvedImage,
    platform: Platform,
    lease: Lease,
    signal: AbortSignal | undefined,
  ): Promise<string> {
    const chain = chainIds(image.diffIds);
    const top = chain.at(-1);
    if (!top)
      throw new TtrpcError(Code.FailedPrecondition, `image ${image.manifestDescriptor.digest} has no layers`);
    lease.addSnapshots(...chain);
    if ((await this.#kind(sn, top)) === "committed") return top;
    const missing = await this.#missingLayers(image);
    if (missing)
      throw new TtrpcError(
        Code.FailedPrecondition,
        `image ${image.manifestDescriptor.digest} is not unpacked and its layer ${missing} is not in the content store`,
      );
    for (let round = 0; round < 2; round++) {
      if (await this.#unpack(namespace, target, platform, lease, signal ?? new AbortController().signal))
        return top;
    }
    throw new TtrpcError(Code.Aborted, "content was removed while unpacking; try again");
  }

  // ---- Prune ----------------------------------------------------------------------------------

  async prune(s: CallScope, req: imagetools.PruneRequest): Promise<Init<imagetools.PruneResponse>> {
    const { images, metadata, gc } = this.sys;
    if (req.all) {
      const used = new Set(metadata.listContainers(s.namespace).map((c) => c.image));
      for (const rec of images.list(s.namespace)) {
        if (used.has(rec.name)) continue;
        try {
          images.delete(s.namespace, rec.name);
          publishImageEvent(this.exchange, s.namespace, "delete", rec);
        } catch (err) {
          if (!isCode(err, Code.NotFound)) throw err;
        }
      }
    }
    const r = await gc.collect();
    return { blobsRemoved: r.blobsRemoved, snapshotsRemoved: r.snapshotsRemoved, bytesFreed: r.bytesFreed };
  }
}

/**
 * The content store as an import sees it: every blob it finds already stored or stores itself is
 * held by its lease from then on, and it deletes nothing. importArchive deletes what it stored
 * when it fails, but a concurrent import may have found those blobs there meanwhile (it skips
 * what the store has) and made its image of them: that image lost its content (found by
 * test/fuzz/daemon-messages.test.ts: an Import abandoned mid-archive failed when its connection
 * closed, after another Import of the same archive had succeeded). What a failed import stored
 * is the GC's, which keeps what a record or another lease names.
 */
function leasedStore(content: ImageSystem["content"], lease: Lease): ImageSystem["content"] {
  type Store = ImageSystem["content"];
  const has: Store["has"] = (digest) => {
    lease.addBlobs(digest);
    return content.has(digest);
  };
  const writeBlob: Store["writeBlob"] = (expected, data) => {
    lease.addBlobs(expected.digest);
    return content.writeBlob(expected, data);
  };
  const ingestStream: Store["ingestStream"] = async (source, options) => {
    if (options?.expected?.digest) lease.addBlobs(options.expected.digest);
    const info = await content.ingestStream(source, options);
    lease.addBlobs(info.digest);
    return info;
  };
  const own: Record<string, unknown> = { has, writeBlob, ingestStream, delete: async () => {} };
  return new Proxy(content, {
    get(target, prop) {
      if (typeof prop === "string" && Object.hasOwn(own, prop)) return own[prop];
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

/** The layer directories of a view's mounts, newest first (a bind mount: one directory). */
export function layerDirs(
  mounts: ReadonlyArray<{ type: string; source: string; options: string[] }>,
): string[] {
  const m = mounts[0];
  if (!m) throw new TtrpcError(Code.Internal, "snapshot view has no mounts");
  if (m.type === "bind") return [m.source];
  const lower = m.options.find((o) => o.startsWith("lowerdir="));
  if (m.type !== "overlay" || !lower)
    throw new TtrpcError(Code.Internal, `unexpected snapshot mount ${m.type}`);
  return lower.slice("lowerdir=".length).split(":");
}

async function exportArchiveTo(
  images: Array<{
    name: string;
    target: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> };
  }>,
  out: PassThrough,
  store: ImageSystem["content"],
  signal: AbortSignal,
): Promise<void> {
  try {
    await exportArchive(images, out, { store, signal });
  } catch (err) {
    out.destroy(err as Error);
    throw err;
  }
}
