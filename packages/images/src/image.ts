// An image as the content store holds it: from a target descriptor (an OCI index, a Docker
// manifest list or a manifest) down to the platform's manifest and its config, each read bounded
// and checked, so unpack, export and the daemon's image service all see one validated shape.

import { Code, TtrpcError } from "@tsrunc/ttrpc/status";
import type { ContentStore, Descriptor, Platform } from "./content-store.js";
import { checkSize, digestHex } from "./digest.js";
import {
  type ImageConfig,
  type ImageIndex,
  type ImageManifest,
  isIndexType,
  isManifestType,
  mediaTypes,
} from "./distribution/media-types.js";
import {
  formatPlatform,
  hostPlatform,
  normalizePlatform,
  parsePlatform,
  pickManifest,
} from "./distribution/platforms.js";

export interface ResolvedImage {
  manifestDescriptor: Descriptor;
  manifest: ImageManifest;
  configDescriptor: Descriptor;
  config: ImageConfig;
  /** The config's rootfs.diff_ids, one per layer. */
  diffIds: string[];
  platform: Platform;
}

const maxJson = 16 * 1024 * 1024;
const maxDepth = 4;

function bad(what: string): TtrpcError {
  return new TtrpcError(Code.InvalidArgument, what);
}

/** Throws InvalidArgument unless `d` is a descriptor with a sha256 digest and a size. */
export function checkDescriptor(d: unknown, what: string): Descriptor {
  const o = d as Partial<Descriptor> | null;
  if (typeof o !== "object" || o === null || typeof o.mediaType !== "string")
    throw bad(`${what}: not a descriptor with a mediaType`);
  try {
    digestHex(o.digest as string);
    checkSize(o.size);
  } catch (err) {
    throw bad(`${what}: ${(err as Error).message}`);
  }
  return o as Descriptor;
}

async function readJson<T>(store: ContentStore, d: Descriptor, what: string): Promise<T> {
  const bytes = await store.readBlob(d.digest, maxJson);
  if (bytes.length !== d.size)
    throw new TtrpcError(Code.FailedPrecondition, `${what} ${d.digest}: size differs`);
  try {
    return JSON.parse(bytes.toString("utf8")) as T;
  } catch {
    throw bad(`${what} ${d.digest} is not JSON`);
  }
}

/** The media type a manifest or index declares in its body, else the descriptor's. */
function bodyType(
  body: { mediaType?: unknown; manifests?: unknown; layers?: unknown },
  d: Descriptor,
): string {
  if (typeof body.mediaType === "string") return body.mediaType;
  if (Array.isArray(body.manifests)) return mediaTypes.ociIndex;
  if (Array.isArray(body.layers)) return mediaTypes.ociManifest;
  return d.mediaType;
}

/**
 * Resolves `target` to the manifest for `platform` (default: the host's) and reads its config.
 * NotFound when a blob on the way is not in the store.
 */
export async function resolveImage(
  store: ContentStore,
  target: Descriptor,
  platform?: string | Platform,
): Promise<ResolvedImage> {
  const want =
    platform === undefined
      ? hostPlatform()
      : typeof platform === "string"
        ? parsePlatform(platform)
        : normalizePlatform(platform);
  let desc = checkDescriptor(target, "image target");
  let picked: Platform | undefined;
  for (let depth = 0; ; depth++) {
    if (depth > maxDepth) throw bad(`image index nesting deeper than ${maxDepth}`);
    const body = await readJson<ImageIndex & ImageManifest>(store, desc, "manifest");
    const type = bodyType(body, desc);
    if (isIndexType(type)) {
      if (!Array.isArray(body.manifests)) throw bad(`index ${desc.digest}: no manifests`);
      for (const [i, m] of body.manifests.entries()) checkDescriptor(m, `index ${desc.digest} manifest ${i}`);
      const next = pickManifest(body.manifests, want);
      if (!next)
        throw new TtrpcError(
          Code.NotFound,
          `image ${target.digest}: no manifest for platform ${formatPlatform(want)}`,
        );
      picked = next.platform;
      desc = next;
      continue;
    }
    if (!isManifestType(type)) throw bad(`manifest ${desc.digest}: unsupported media type ${type}`);
    const manifest = body as ImageManifest;
    const configDescriptor = checkDescriptor(manifest.config, `manifest ${desc.digest} config`);
    if (!Array.isArray(manifest.layers)) throw bad(`manifest ${desc.digest}: no layers`);
    for (const [i, l] of manifest.layers.entries()) checkDescriptor(l, `manifest ${desc.digest} layer ${i}`);
    const config = await readJson<ImageConfig>(store, configDescriptor, "config");
    const diffIds = config.rootfs?.diff_ids;
    if (!Array.isArray(diffIds) || diffIds.some((d) => typeof d !== "string"))
      throw bad(`config ${configDescriptor.digest}: no rootfs.diff_ids`);
    for (const d of diffIds) digestHex(d);
    if (diffIds.length !== manifest.layers.length)
      throw bad(
        `image ${desc.digest}: ${manifest.layers.length} layers but ${diffIds.length} diff_ids in its config`,
      );
    const platformOut: Platform = picked ?? {
      os: typeof config.os === "string" ? config.os : want.os,
      architecture: typeof config.architecture === "string" ? config.architecture : want.architecture,
      ...(typeof config.variant === "string" ? { variant: config.variant } : {}),
    };
    return { manifestDescriptor: desc, manifest, configDescriptor, config, diffIds, platform: platformOut };
  }
}
