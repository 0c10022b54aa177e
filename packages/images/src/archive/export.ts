// Export of images from the content store as an OCI image layout tar (`oci-layout`, `index.json`,
// `blobs/sha256/<hex>`), the form containerd's `ctr images import` (and skopeo's `oci-archive:`)
// reads. Each index.json entry carries the image's full name in `io.containerd.image.name` and its
// tag in `org.opencontainers.image.ref.name`, as `ctr images export` writes them. An index's
// child manifests that the store does not hold (platforms never pulled) are left out, the index
// itself kept byte for byte (its digest is the image's identity); every manifest written is complete.
// The tar is written with tar-stream's pack (a well-kept writer; our reader is separate only because
// tar-stream's reader loses binary xattrs, which an archive of blobs never has).

import type { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Code, TtrpcError } from "@tsrunc/ttrpc/status";
import { pack } from "tar-stream";
import type { ContentStore, Descriptor } from "../content-store.js";
import { digestHex } from "../digest.js";
import {
  type ImageIndex,
  type ImageManifest,
  isIndexType,
  isManifestType,
} from "../distribution/media-types.js";
import { checkDescriptor } from "../image.js";
import { annotations, type ImageRecord } from "./import.js";

export interface ExportOptions {
  store: ContentStore;
  signal?: AbortSignal;
}

const maxJson = 16 * 1024 * 1024;
const epoch = new Date(0);

/** The tag of a normalized name ("docker.io/library/busybox:latest" → "latest"), if it has one. */
function tagOf(name: string): string | undefined {
  const at = name.indexOf("@");
  const base = at === -1 ? name : name.slice(0, at);
  const slash = base.lastIndexOf("/");
  const colon = base.lastIndexOf(":");
  return colon > slash ? base.slice(colon + 1) : undefined;
}

/** Every blob an image needs, children before parents, each once. */
async function collectBlobs(
  store: ContentStore,
  target: Descriptor,
  out: Map<string, number>,
  depth = 0,
): Promise<boolean> {
  if (depth > 4) throw new TtrpcError(Code.InvalidArgument, "image index nesting too deep");
  if (!(await store.has(target.digest))) return false;
  // A record's target may name any blob (Images.Create takes what it is given): a layer or a
  // JSON scalar is the caller's mistake, not an internal error.
  let parsed: unknown;
  try {
    parsed = JSON.parse((await store.readBlob(target.digest, maxJson)).toString("utf8"));
  } catch (err) {
    if (err instanceof TtrpcError) throw err;
    throw new TtrpcError(
      Code.InvalidArgument,
      `${target.digest} is not an image index or manifest (not JSON)`,
    );
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new TtrpcError(Code.InvalidArgument, `${target.digest} is not an image index or manifest`);
  const body = parsed as ImageIndex & ImageManifest;
  const type = typeof body.mediaType === "string" ? body.mediaType : target.mediaType;
  if (isIndexType(type) || Array.isArray(body.manifests)) {
    let any = false;
    for (const [i, m] of (body.manifests ?? []).entries()) {
      checkDescriptor(m, `index ${target.digest} manifest ${i}`);
      if (await collectBlobs(store, m, out, depth + 1)) any = true;
    }
    if (!any)
      throw new TtrpcError(Code.NotFound, `image index ${target.digest}: no complete manifest in the store`);
  } else if (isManifestType(type) || Array.isArray(body.layers)) {
    const parts = [checkDescriptor(body.config, `manifest ${target.digest} config`)];
    for (const [i, l] of (body.layers ?? []).entries())
      parts.push(checkDescriptor(l, `manifest ${target.digest} layer ${i}`));
    for (const p of parts) {
      const info = await store.info(p.digest);
      if (!info) {
        if (depth > 0) return false; // a platform not pulled: leave it out
        throw new TtrpcError(
          Code.NotFound,
          `blob ${p.digest} of manifest ${target.digest}: not in the content store`,
        );
      }
      out.set(p.digest, info.size);
    }
  } else {
    throw new TtrpcError(Code.InvalidArgument, `blob ${target.digest}: unsupported media type ${type}`);
  }
  out.set(target.digest, target.size);
  return true;
}

/** Writes an OCI archive of `images` to `out`. */
export async function exportArchive(
  images: readonly ImageRecord[],
  out: Writable,
  options: ExportOptions,
): Promise<void> {
  const { store, signal } = options;
  if (images.length === 0) throw new TtrpcError(Code.InvalidArgument, "nothing to export");
  const blobs = new Map<string, number>();
  const manifests: Descriptor[] = [];
  for (const img of images) {
    const t = checkDescriptor(img.target, `image ${img.name}`);
    if (!(await collectBlobs(store, t, blobs)))
      throw new TtrpcError(Code.NotFound, `image ${img.name}: ${t.digest} is not in the content store`);
    const tag = tagOf(img.name);
    manifests.push({
      mediaType: t.mediaType,
      digest: t.digest,
      size: t.size,
      ...(t.platform ? { platform: t.platform } : {}),
      annotations: {
        ...(t.annotations ?? {}),
        [annotations.imageName]: img.name,
        ...(tag === undefined ? {} : { [annotations.refName]: tag }),
      },
    });
  }
  const index = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests }),
  );
  const layout = Buffer.from(JSON.stringify({ imageLayoutVersion: "1.0.0" }));

  const tar = pack();
  const writing = pipeline(tar, out);
  const add = (name: string, data: Buffer) =>
    new Promise<void>((resolve, reject) =>
      tar.entry({ name, mtime: epoch, mode: 0o644, size: data.length }, data, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  const dir = (name: string) =>
    new Promise<void>((resolve, reject) =>
      tar.entry({ name, type: "directory", mtime: epoch, mode: 0o755 }, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  try {
    await add("oci-layout", layout);
    await dir("blobs/");
    await dir("blobs/sha256/");
    for (const [digest, size] of blobs) {
      if (signal?.aborted) throw new TtrpcError(Code.Canceled, "export canceled");
      await new Promise<void>((resolve, reject) => {
        const entry = tar.entry(
          { name: `blobs/sha256/${digestHex(digest)}`, mtime: epoch, mode: 0o644, size },
          (err) => (err ? reject(err) : resolve()),
        );
        pipeline(store.openRead(digest), entry).catch(reject);
      });
    }
    await add("index.json", index);
    tar.finalize();
    await writing;
  } catch (err) {
    tar.destroy(err as Error);
    await writing.catch(() => {});
    throw err;
  }
}
