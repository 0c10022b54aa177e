// Unpack: an image's layers from the content store into committed snapshots keyed by chain id,
// as containerd's unpacker does — for each layer, in order: if the snapshot of its chain exists,
// skip it; else prepare an active snapshot on the previous chain, apply the layer (overlay mode
// into the upper dir, flat mode where there is no parent or on the copy backend), check its DiffID
// against the config's rootfs.diff_ids, and commit it under the chain id. A failed layer's active
// snapshot is removed; a concurrent unpack that committed the same chain first wins (ours is
// dropped, as containerd does).

import { randomBytes } from "node:crypto";
import { Code, isCode, TtrpcError } from "@tsrunc/ttrpc/status";
import type { ContentStore, Descriptor, Platform } from "./content-store.js";
import { chainIds } from "./digest.js";
import { type ResolvedImage, resolveImage } from "./image.js";
import { applyLayer } from "./layer/apply.js";
import type { OverlaySnapshotter } from "./snapshotter/overlay.js";

export interface UnpackProgress {
  layer: number;
  layers: number;
  digest: string;
  chainId: string;
  status: "exists" | "applying" | "applied";
  /** Uncompressed bytes applied (with "applied"). */
  size?: number;
}

export interface UnpackOptions {
  store: ContentStore;
  snapshotter: OverlaySnapshotter;
  /** The image's target (index, list or manifest). */
  target: Descriptor;
  /** Default: the host's. */
  platform?: string | Platform;
  signal?: AbortSignal;
  onProgress?: (event: UnpackProgress) => void;
  /** Per-layer bound on tar entries (default applyLayer's). */
  maxEntries?: number;
}

export interface UnpackResult {
  image: ResolvedImage;
  /** The chain id of the whole image: the snapshot to prepare a container's rootfs on. */
  chainId: string;
  chainIds: string[];
  /** Layers applied now (the others existed). */
  applied: number;
}

/** Unpacks the image `target` into the snapshotter; returns its chain id. */
export async function unpack(options: UnpackOptions): Promise<UnpackResult> {
  const { store, snapshotter, signal } = options;
  const image = await resolveImage(store, options.target, options.platform);
  const chain = chainIds(image.diffIds);
  if (chain.length === 0) throw new TtrpcError(Code.InvalidArgument, "image has no layers");
  const emit = options.onProgress ?? (() => {});
  let applied = 0;
  for (let i = 0; i < chain.length; i++) {
    if (signal?.aborted) throw new TtrpcError(Code.Canceled, "unpack canceled");
    const layer = image.manifest.layers[i]!;
    const chainId = chain[i]!;
    const base = { layer: i, layers: chain.length, digest: layer.digest, chainId };
    if (await exists(snapshotter, chainId)) {
      emit({ ...base, status: "exists" });
      continue;
    }
    if (!(await store.has(layer.digest)))
      throw new TtrpcError(
        Code.NotFound,
        `layer ${i} (${layer.digest}) of ${image.manifestDescriptor.digest}: not in the content store`,
      );
    emit({ ...base, status: "applying" });
    const key = `extract-${Date.now()}-${randomBytes(4).toString("hex")} ${chainId}`;
    await snapshotter.prepare(key, i === 0 ? undefined : chain[i - 1], {
      labels: { "containerd.io/snapshot.ref": chainId },
    });
    try {
      const target = await snapshotter.applyTarget(key);
      const res = await applyLayer(store.openRead(layer.digest), target.dir, {
        mode: target.mode,
        parents: target.parents,
        mediaType: layer.mediaType,
        expectedDiffId: image.diffIds[i]!,
        ...(options.maxEntries === undefined ? {} : { maxEntries: options.maxEntries }),
        ...(signal === undefined ? {} : { signal }),
      }).catch((err: unknown) => {
        if (err instanceof TtrpcError)
          throw new TtrpcError(err.code, `layer ${i} (${layer.digest}): ${err.message}`, { cause: err });
        throw err;
      });
      try {
        await snapshotter.commit(chainId, key);
      } catch (err) {
        if (!isCode(err, Code.AlreadyExists)) throw err;
        await snapshotter.remove(key); // another unpack committed this chain first
      }
      applied++;
      emit({ ...base, status: "applied", size: res.size });
    } catch (err) {
      await snapshotter.remove(key).catch(() => {});
      throw err;
    }
  }
  return { image, chainId: chain.at(-1)!, chainIds: chain, applied };
}

async function exists(snapshotter: OverlaySnapshotter, key: string): Promise<boolean> {
  try {
    return (await snapshotter.stat(key)).kind === "committed";
  } catch (err) {
    if (isCode(err, Code.NotFound)) return false;
    throw err;
  }
}
