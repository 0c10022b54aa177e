// pull: a reference → every blob of one platform's image in the content store.
//   resolve the reference → fetch the root manifest; if it is an index/list, pick the platform's
//   manifest (recursively, for nested indexes) → fetch the config and the layers (in parallel, at
//   most `concurrency` at once) through the store's resumable writers: an ingest left by an
//   interrupted pull is continued with an HTTP Range request (or by skipping what was already
//   stored when the registry sends the whole blob) → store the manifest, then the index(es).
// Children are committed before their parents, so a manifest in the store means its config and
// layers are there too. The store verifies size and digest of every blob; a blob whose bytes do not
// match is refused and its ingest discarded. A transient network failure retries from the ingest's
// offset; an abort leaves the ingests for the next pull to resume.

import { setTimeout as sleep } from "node:timers/promises";
import { Code, TtrpcError } from "@tsrunc/ttrpc/status";
import type { ContentStore, ContentWriter, Descriptor, Platform } from "../content-store.js";
import { checkSize, digestHex } from "../digest.js";
import {
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  isIndexType,
  isManifestType,
  isSchema1Type,
} from "./media-types.js";
import { formatPlatform, hostPlatform, normalizePlatform, parsePlatform, pickManifest } from "./platforms.js";
import { formatReference, parseReference, type Reference } from "./reference.js";
import { RegistryClient, type RegistryClientOptions, sniffMediaType } from "./registry-client.js";

export type BlobKind = "index" | "manifest" | "config" | "layer";

export interface PullProgress {
  kind: BlobKind;
  digest: string;
  mediaType: string;
  /** Bytes of this blob in the store or its ingest so far. */
  done: number;
  total: number;
  /**
   * waiting: queued behind the concurrency bound; downloading: bytes are arriving (`resumedFrom`
   * says how many an earlier, interrupted pull had left); exists: already in the store; done: committed.
   */
  status: "waiting" | "downloading" | "exists" | "done";
  resumedFrom?: number;
}

export interface PullOptions extends RegistryClientOptions {
  store: ContentStore;
  /** A client to reuse (its tokens and connections); else one is made from these options and closed after. */
  client?: RegistryClient;
  /** "os/arch[/variant]" or a Platform; default the host's. */
  platform?: string | Platform;
  /** Blobs fetched at once. Default 3 (containerd's). */
  concurrency?: number;
  onProgress?: (event: PullProgress) => void;
  signal?: AbortSignal;
  /** Retries of one blob after a network failure (each from where it stopped). Default 3. */
  retries?: number;
}

export interface PullResult {
  /** The normalized name pulled: "docker.io/library/busybox:latest". */
  name: string;
  /** The root descriptor the name resolves to (an index, a list or a manifest): the image record's target. */
  target: Descriptor;
  /** The platform's image manifest. */
  manifestDescriptor: Descriptor;
  manifest: ImageManifest;
  config: ImageConfig;
  /** The platform of the picked manifest (from the index, else from the config). */
  platform: Platform;
  /** The root index, when the name resolves to one. */
  index?: ImageIndex;
  /** Blob bytes received from the registry (less than the image's size when blobs existed or ingests resumed). */
  transferred: number;
}

const maxConfigBytes = 16 * 1024 * 1024;
const maxIndexDepth = 4;
const lockPollMs = 100;

/** Pulls `reference` into `options.store` and returns what was pulled. */
export async function pull(reference: string | Reference, options: PullOptions): Promise<PullResult> {
  const ref = typeof reference === "string" ? parseReference(reference) : reference;
  const want =
    options.platform === undefined
      ? hostPlatform()
      : typeof options.platform === "string"
        ? parsePlatform(options.platform)
        : normalizePlatform(options.platform);
  const client = options.client ?? new RegistryClient(options);
  // One controller for the whole pull: the caller's abort, or the first failed layer, stops the rest.
  const controller = new AbortController();
  const onAbort = () => controller.abort(options.signal?.reason);
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener("abort", onAbort, { once: true });
  const ctx: Ctx = {
    ref,
    store: options.store,
    client,
    signal: controller.signal,
    retries: options.retries ?? 3,
    emit: options.onProgress ?? (() => {}),
    transferred: 0,
  };
  try {
    return await pullWith(ctx, want, Math.max(1, options.concurrency ?? 3), controller);
  } catch (err) {
    if (options.signal?.aborted)
      throw new TtrpcError(Code.Canceled, `pull of ${formatReference(ref)} canceled`, { cause: err });
    throw err;
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    if (options.client === undefined) client.close();
  }
}

interface Ctx {
  ref: Reference;
  store: ContentStore;
  client: RegistryClient;
  signal: AbortSignal;
  retries: number;
  emit: (event: PullProgress) => void;
  transferred: number;
}

async function pullWith(
  ctx: Ctx,
  want: Platform,
  concurrency: number,
  controller: AbortController,
): Promise<PullResult> {
  const { ref, store, client } = ctx;
  const { name, descriptor: target } = await client.resolve(ref, { signal: ctx.signal });
  checkDescriptor(target, "the resolved manifest");

  // Walk down from the root to the platform's manifest; parents are stored last.
  const parents: Array<{ desc: Descriptor; bytes: Buffer }> = [];
  let rootIndex: ImageIndex | undefined;
  let desc = target;
  let platform: Platform | undefined;
  let manifest: ImageManifest;
  let manifestBytes: Buffer;
  for (let depth = 0; ; depth++) {
    const bytes = await manifestFromStoreOrRegistry(ctx, desc);
    const type =
      isIndexType(desc.mediaType) || isManifestType(desc.mediaType) ? desc.mediaType : sniffMediaType(bytes);
    if (type !== undefined && isSchema1Type(type))
      throw new TtrpcError(
        Code.Unimplemented,
        `${formatReference(ref)}: Docker schema 1 manifests are not supported (push the image again with a current client)`,
      );
    const parsed = parseJson(bytes, `manifest ${desc.digest}`);
    if (type !== undefined && isIndexType(type)) {
      const index = parsed as ImageIndex;
      if (!Array.isArray(index.manifests))
        throw new TtrpcError(Code.InvalidArgument, `index ${desc.digest} has no manifests list`);
      for (const m of index.manifests) checkDescriptor(m, `an entry of index ${desc.digest}`);
      rootIndex ??= index;
      parents.push({ desc, bytes });
      if (depth + 1 >= maxIndexDepth)
        throw new TtrpcError(Code.InvalidArgument, `${formatReference(ref)}: indexes nested too deep`);
      const chosen = pickManifest(index.manifests, want);
      if (chosen === undefined) {
        const offered = index.manifests
          .filter((m) => m.platform !== undefined)
          .map((m) => formatPlatform(m.platform!))
          .join(", ");
        throw new TtrpcError(
          Code.NotFound,
          `${formatReference(ref)}: no manifest for platform ${formatPlatform(want)} in index ${desc.digest}` +
            (offered ? ` (it has ${offered})` : ""),
        );
      }
      ctx.emit({
        kind: "index",
        digest: desc.digest,
        mediaType: desc.mediaType,
        done: 0,
        total: desc.size,
        status: "downloading",
      });
      platform = chosen.platform;
      desc = chosen;
      continue;
    }
    if (type !== undefined && isManifestType(type)) {
      manifest = parsed as ImageManifest;
      if (typeof manifest.config !== "object" || manifest.config === null || !Array.isArray(manifest.layers))
        throw new TtrpcError(Code.InvalidArgument, `manifest ${desc.digest} lacks a config or a layers list`);
      checkDescriptor(manifest.config, `the config of manifest ${desc.digest}`);
      for (const l of manifest.layers) checkDescriptor(l, `a layer of manifest ${desc.digest}`);
      manifestBytes = bytes;
      break;
    }
    throw new TtrpcError(
      Code.Unimplemented,
      `${formatReference(ref)}: unsupported manifest media type ${JSON.stringify(type ?? desc.mediaType)}`,
    );
  }
  const manifestDescriptor = desc;

  // The config and the layers (each distinct digest once), bounded in parallel.
  const jobs: Array<{ desc: Descriptor; kind: BlobKind }> = [{ desc: manifest.config, kind: "config" }];
  const seen = new Set<string>([manifest.config.digest]);
  for (const layer of manifest.layers) {
    if (seen.has(layer.digest)) continue;
    seen.add(layer.digest);
    jobs.push({ desc: layer, kind: "layer" });
  }
  await runBounded(jobs, concurrency, controller, (job) => fetchBlob(ctx, job.desc, job.kind), ctx);

  const config = parseJson(
    await store.readBlob(manifest.config.digest, maxConfigBytes),
    `config ${manifest.config.digest}`,
  ) as ImageConfig;
  if (platform === undefined && typeof config.os === "string" && typeof config.architecture === "string") {
    platform = {
      os: config.os,
      architecture: config.architecture,
      ...(typeof config.variant === "string" ? { variant: config.variant } : {}),
    };
  }

  // Then the manifest, then the indexes from the innermost out.
  await storeSmall(ctx, manifestDescriptor, manifestBytes, "manifest");
  for (const parent of parents.reverse()) await storeSmall(ctx, parent.desc, parent.bytes, "index");

  return {
    name,
    target,
    manifestDescriptor,
    manifest,
    config,
    platform: platform ?? want,
    ...(rootIndex === undefined ? {} : { index: rootIndex }),
    transferred: ctx.transferred,
  };
}

function checkDescriptor(desc: Descriptor, what: string): void {
  if (typeof desc !== "object" || desc === null)
    throw new TtrpcError(Code.InvalidArgument, `${what}: not a descriptor`);
  try {
    digestHex(desc.digest);
    checkSize(desc.size);
  } catch (err) {
    throw new TtrpcError(Code.InvalidArgument, `${what}: ${(err as Error).message}`, { cause: err });
  }
  if (typeof desc.mediaType !== "string") desc.mediaType = "";
}

function parseJson(bytes: Buffer, what: string): unknown {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new TtrpcError(Code.InvalidArgument, `${what} is not JSON`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new TtrpcError(Code.InvalidArgument, `${what} is not a JSON object`);
  return parsed;
}

async function manifestFromStoreOrRegistry(ctx: Ctx, desc: Descriptor): Promise<Buffer> {
  if (await ctx.store.has(desc.digest)) {
    try {
      return await ctx.store.readBlob(desc.digest);
    } catch (err) {
      if (!(err instanceof TtrpcError && err.code === Code.NotFound)) throw err;
    }
  }
  return await ctx.client.fetchManifest(ctx.ref, desc, { signal: ctx.signal });
}

async function storeSmall(ctx: Ctx, desc: Descriptor, bytes: Buffer, kind: BlobKind): Promise<void> {
  const exists = await ctx.store.has(desc.digest);
  if (!exists) await ctx.store.writeBlob({ digest: desc.digest, size: desc.size }, bytes);
  ctx.emit({
    kind,
    digest: desc.digest,
    mediaType: desc.mediaType,
    done: desc.size,
    total: desc.size,
    status: exists ? "exists" : "done",
  });
}

/** Runs `fn` over `items`, at most `limit` at once; the first failure aborts the rest, which are awaited. */
async function runBounded<T>(
  items: readonly T[],
  limit: number,
  controller: AbortController,
  fn: (item: T) => Promise<void>,
  ctx: Ctx,
): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  const worker = async () => {
    while (next < items.length && !ctx.signal.aborted) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        errors.push(err);
        if (!controller.signal.aborted) controller.abort(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (errors.length > 0) {
    // The failure that caused the others (which are mostly Canceled), unless the caller canceled.
    throw errors.find((e) => !(e instanceof TtrpcError && e.code === Code.Canceled)) ?? errors[0];
  }
  ctx.signal.throwIfAborted();
}

function isTransient(err: unknown): boolean {
  return err instanceof TtrpcError && err.code === Code.Unavailable;
}

/**
 * Leaves an unfinished ingest for a later resume (a short commit closes the writer and keeps the
 * bytes); an empty one is removed, there is nothing to resume.
 */
async function closeKeeping(writer: ContentWriter): Promise<void> {
  if (writer.offset === 0) await writer.abort().catch(() => {});
  else await writer.commit().catch(() => {});
}

/** Fetches one blob into the store, resuming its ingest; retries transient failures from where they stopped. */
async function fetchBlob(ctx: Ctx, desc: Descriptor, kind: BlobKind): Promise<void> {
  const { store, client, signal } = ctx;
  const expected = { digest: desc.digest, size: desc.size };
  const base = { kind, digest: desc.digest, mediaType: desc.mediaType, total: desc.size };
  ctx.emit({ ...base, done: 0, status: "waiting" });
  for (let attempt = 0; ; attempt++) {
    signal.throwIfAborted();
    if (await store.has(desc.digest)) {
      ctx.emit({ ...base, done: desc.size, status: "exists" });
      return;
    }
    let writer: ContentWriter;
    try {
      writer = await store.writer(`${kind}-${desc.digest}`, expected);
    } catch (err) {
      // Unavailable: another pull of this process is writing the same blob; wait for it.
      if (isTransient(err)) {
        await sleep(lockPollMs, undefined, { signal }).catch(() => signal.throwIfAborted());
        attempt--;
        continue;
      }
      throw err;
    }
    const resumedFrom = writer.offset;
    try {
      ctx.emit({ ...base, done: resumedFrom, status: "downloading", resumedFrom });
      if (writer.offset < desc.size) {
        const { stream, offset } = await client.fetchBlob(ctx.ref, desc, { offset: writer.offset, signal });
        let skip = writer.offset - offset;
        try {
          for await (const chunk of stream as AsyncIterable<Buffer>) {
            ctx.transferred += chunk.length;
            let data = chunk;
            if (skip > 0) {
              if (data.length <= skip) {
                skip -= data.length;
                continue;
              }
              data = data.subarray(skip);
              skip = 0;
            }
            await writer.write(data);
            ctx.emit({ ...base, done: writer.offset, status: "downloading", resumedFrom });
          }
        } finally {
          stream.destroy();
        }
      }
      if (writer.offset < desc.size)
        throw new TtrpcError(
          Code.Unavailable,
          `${kind} ${desc.digest}: the registry's answer ended after ${writer.offset} of ${desc.size} bytes`,
        );
      await writer.commit();
      ctx.emit({ ...base, done: desc.size, status: "done" });
      return;
    } catch (err) {
      const failure = blobError(err, ctx, desc, kind);
      await closeKeeping(writer);
      if (await store.has(desc.digest)) {
        // The last bytes arrived before the failure: the commit above made the blob.
        ctx.emit({ ...base, done: desc.size, status: "done" });
        return;
      }
      if (signal.aborted || !isTransient(failure) || attempt >= ctx.retries) throw failure;
      await sleep(Math.min(2000, 200 * 2 ** attempt), undefined, { signal }).catch(() =>
        signal.throwIfAborted(),
      );
    }
  }
}

function blobError(err: unknown, ctx: Ctx, desc: Descriptor, kind: BlobKind): unknown {
  const canceledOrBroken =
    !(err instanceof TtrpcError) || err.code === Code.Canceled || err.code === Code.Unavailable;
  if (ctx.signal.aborted && canceledOrBroken)
    return new TtrpcError(Code.Canceled, `${kind} ${desc.digest}: canceled`, { cause: err });
  if (err instanceof TtrpcError) {
    if (err.code === Code.FailedPrecondition)
      return new TtrpcError(
        Code.FailedPrecondition,
        `${kind} ${desc.digest} from ${formatReference(ctx.ref)}: ${err.message}`,
        { cause: err },
      );
    return err;
  }
  // A stream error that is not ours: the connection broke mid-body.
  const e = err as NodeJS.ErrnoException;
  return new TtrpcError(
    Code.Unavailable,
    `${kind} ${desc.digest}: ${e?.code ? `${e.code}: ` : ""}${e?.message ?? String(err)}`,
    { cause: err },
  );
}
