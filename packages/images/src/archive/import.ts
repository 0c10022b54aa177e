// Import of image archives into the content store, streaming (the archive is read once, in order):
//  - an OCI image layout tar (`oci-layout`, `index.json`, `blobs/sha256/<hex>`), as `skopeo copy
//    … oci-archive:`, `ctr images export` and Docker 25+'s `docker save` write it: each blob is
//    checked against the digest its path names;
//  - a docker-archive (`manifest.json` + layer tars + config), as `docker save` (before 25) and
//    `skopeo copy … docker-archive:` write it: every file is stored under the digest it has, then a
//    Docker schema 2 manifest is made for each manifest.json entry.
// The archive itself may be gzip-compressed. It returns image records {name, target}; the caller
// keeps them. What this import added to the store is removed again if it fails.

import { Code, TtrpcError } from "@tsrunc/ttrpc/status";
import type { BlobInfo, ContentStore, Descriptor } from "../content-store.js";
import { digestHex, isDigest, sha256Digest } from "../digest.js";
import { type ImageIndex, mediaTypes } from "../distribution/media-types.js";
import { normalizeReference, parseReference } from "../distribution/reference.js";
import { checkDescriptor } from "../image.js";
import { cleanEntryName } from "../layer/apply.js";
import { decompressed, sniffCompression } from "../layer/decompress.js";
import { ByteSource, tarEntries } from "../layer/tar-reader.js";

export interface ImageRecord {
  /** Normalized name: "docker.io/library/busybox:latest". */
  name: string;
  target: Descriptor;
}

export interface ImportOptions {
  store: ContentStore;
  /** Names images the archive tags only with a bare tag ("latest"): `${baseName}:${tag}`. */
  baseName?: string;
  signal?: AbortSignal;
  /** Called once a file of the archive is stored. */
  onProgress?: (event: { path: string; size: number; digest: string }) => void;
}

export interface ImportResult {
  format: "oci" | "docker";
  images: ImageRecord[];
  /** Blobs the archive held (whether or not the store already had them). */
  blobs: BlobInfo[];
}

/** OCI annotations as containerd reads and writes them. */
export const annotations = {
  imageName: "io.containerd.image.name",
  refName: "org.opencontainers.image.ref.name",
} as const;

const maxMetadataFile = 16 * 1024 * 1024;
const maxMetadataTotal = 64 * 1024 * 1024;
const ociBlobPath = /^blobs\/sha256\/([0-9a-f]{64})$/;

function invalid(why: string): TtrpcError {
  return new TtrpcError(Code.InvalidArgument, `invalid image archive: ${why}`);
}

/** Files kept in memory rather than in the store: the archive's own metadata. */
function isMetadataFile(path: string): boolean {
  return (
    path === "manifest.json" ||
    path === "index.json" ||
    path === "oci-layout" ||
    path === "repositories" ||
    /^[^/]+\/(json|VERSION)$/.test(path)
  );
}

async function collect(chunks: AsyncIterable<Buffer>, max: number, path: string): Promise<Buffer> {
  const out: Buffer[] = [];
  let n = 0;
  for await (const c of chunks) {
    n += c.length;
    if (n > max) throw invalid(`${path} is larger than ${max} bytes`);
    out.push(Buffer.from(c));
  }
  return Buffer.concat(out);
}

function parseJson<T>(buf: Buffer | undefined, path: string): T {
  if (buf === undefined) throw invalid(`no ${path}`);
  try {
    return JSON.parse(buf.toString("utf8")) as T;
  } catch {
    throw invalid(`${path} is not JSON`);
  }
}

/** Imports the archive read from `input`; see the module comment. */
export async function importArchive(
  input: AsyncIterable<Uint8Array>,
  options: ImportOptions,
): Promise<ImportResult> {
  const { store, signal } = options;
  const metadata = new Map<string, Buffer>();
  const files = new Map<string, BlobInfo>();
  const links = new Map<string, string>();
  const added: string[] = [];
  let metadataBytes = 0;
  const src = new ByteSource(decompressed(input));
  try {
    for await (const entry of tarEntries(src)) {
      if (signal?.aborted) throw new TtrpcError(Code.Canceled, "import canceled");
      const h = entry.header;
      const path = cleanEntryName(Buffer.from(h.name, "latin1").toString("utf8"));
      if (path === undefined || path === "") continue;
      if (h.type === "symlink" || h.type === "link") {
        const slash = path.lastIndexOf("/");
        const target =
          h.type === "symlink" && !h.linkname.startsWith("/")
            ? `${path.slice(0, slash + 1)}${h.linkname}`
            : h.linkname;
        const clean = cleanEntryName(Buffer.from(target, "latin1").toString("utf8"));
        if (clean !== undefined) links.set(path, clean);
        continue;
      }
      if (h.type !== "file") continue;
      if (isMetadataFile(path)) {
        const data = await collect(entry.data(), maxMetadataFile, path);
        metadataBytes += data.length - (metadata.get(path)?.length ?? 0);
        if (metadataBytes > maxMetadataTotal)
          throw invalid(`more than ${maxMetadataTotal} bytes of metadata files`);
        metadata.set(path, data);
        continue;
      }
      const m = ociBlobPath.exec(path);
      const expected = m ? { digest: `sha256:${m[1]}`, size: h.size } : { size: h.size };
      if (m && (await store.has(expected.digest!))) {
        files.set(path, { digest: expected.digest!, size: h.size });
        continue; // its data is skipped
      }
      const info = await store.ingestStream(entry.data(), { expected }).catch((err: unknown) => {
        if (err instanceof TtrpcError) throw new TtrpcError(err.code, `archive file ${path}: ${err.message}`);
        throw err;
      });
      files.set(path, info);
      added.push(info.digest);
      options.onProgress?.({ path, size: info.size, digest: info.digest });
    }
    const resolveFile = (path: string): BlobInfo | undefined => {
      let p = cleanEntryName(path);
      for (let i = 0; i < 16 && p !== undefined; i++) {
        const f = files.get(p);
        if (f) return f;
        p = links.get(p);
      }
      return undefined;
    };
    if (metadata.has("oci-layout")) {
      const images = await importOci(store, metadata, options.baseName);
      return { format: "oci", images, blobs: [...files.values()] };
    }
    if (metadata.has("manifest.json")) {
      const { images, written } = await importDocker(store, metadata, resolveFile, options.baseName);
      added.push(...written);
      return { format: "docker", images, blobs: [...files.values()] };
    }
    throw invalid(
      "neither an OCI image layout (oci-layout, index.json) nor a docker archive (manifest.json)",
    );
  } catch (err) {
    for (const d of added) await store.delete(d).catch(() => {});
    throw err;
  }
}

const tagPattern = /^[\w][\w.-]{0,127}$/;

/** The name an index.json entry gives its image, as containerd reads it. */
function ociName(d: Descriptor, baseName: string | undefined): string | undefined {
  const full = d.annotations?.[annotations.imageName];
  if (full) return normalizeReference(full);
  const ref = d.annotations?.[annotations.refName];
  if (!ref) return undefined;
  if (tagPattern.test(ref))
    return baseName === undefined ? undefined : normalizeReference(`${baseName}:${ref}`);
  try {
    return normalizeReference(ref);
  } catch {
    return undefined;
  }
}

async function importOci(
  store: ContentStore,
  metadata: Map<string, Buffer>,
  baseName: string | undefined,
): Promise<ImageRecord[]> {
  const layout = parseJson<{ imageLayoutVersion?: string }>(metadata.get("oci-layout"), "oci-layout");
  if (typeof layout.imageLayoutVersion !== "string") throw invalid("oci-layout has no imageLayoutVersion");
  const index = parseJson<ImageIndex>(metadata.get("index.json"), "index.json");
  if (!Array.isArray(index.manifests)) throw invalid("index.json has no manifests");
  const images: ImageRecord[] = [];
  for (const [i, raw] of index.manifests.entries()) {
    const d = checkDescriptor(raw, `index.json manifest ${i}`);
    if (!(await store.has(d.digest)))
      throw invalid(`index.json names ${d.digest}, which the archive does not hold`);
    const refName = d.annotations?.[annotations.refName];
    const tag = refName !== undefined && tagPattern.test(refName) ? refName : "latest";
    const name =
      ociName(d, baseName) ?? normalizeReference(`import-${digestHex(d.digest).slice(0, 12)}:${tag}`);
    const target: Descriptor = { mediaType: d.mediaType, digest: d.digest, size: d.size };
    if (d.platform) target.platform = d.platform;
    images.push({ name, target });
  }
  return images;
}

interface DockerManifestEntry {
  Config?: unknown;
  RepoTags?: unknown;
  Layers?: unknown;
}

async function importDocker(
  store: ContentStore,
  metadata: Map<string, Buffer>,
  resolveFile: (path: string) => BlobInfo | undefined,
  baseName: string | undefined,
): Promise<{ images: ImageRecord[]; written: string[] }> {
  const entries = parseJson<DockerManifestEntry[]>(metadata.get("manifest.json"), "manifest.json");
  if (!Array.isArray(entries) || entries.length === 0) throw invalid("manifest.json lists no image");
  const images: ImageRecord[] = [];
  const written: string[] = [];
  for (const [i, e] of entries.entries()) {
    if (
      typeof e?.Config !== "string" ||
      !Array.isArray(e.Layers) ||
      e.Layers.some((l) => typeof l !== "string")
    )
      throw invalid(`manifest.json entry ${i}: want Config and Layers paths`);
    const config = resolveFile(e.Config);
    if (!config)
      throw invalid(`manifest.json entry ${i}: config ${JSON.stringify(e.Config)} is not in the archive`);
    const cfg = parseJson<{ rootfs?: { diff_ids?: unknown } }>(await store.readBlob(config.digest), e.Config);
    const diffIds = cfg.rootfs?.diff_ids;
    if (!Array.isArray(diffIds) || diffIds.length !== e.Layers.length || !diffIds.every(isDigest))
      throw invalid(
        `manifest.json entry ${i}: the config's rootfs.diff_ids do not match its ${e.Layers.length} layers`,
      );
    const layers: Descriptor[] = [];
    for (const [j, lp] of (e.Layers as string[]).entries()) {
      const f = resolveFile(lp);
      if (!f) throw invalid(`manifest.json entry ${i}: layer ${JSON.stringify(lp)} is not in the archive`);
      const head = await firstBytes(store, f.digest);
      const compression = sniffCompression(head);
      if (compression === "none" && f.digest !== diffIds[j])
        throw new TtrpcError(
          Code.FailedPrecondition,
          `docker archive layer ${JSON.stringify(lp)} is ${f.digest} but the config's diff_id says ${diffIds[j]}`,
        );
      const mediaType =
        compression === "gzip"
          ? "application/vnd.docker.image.rootfs.diff.tar.gzip"
          : compression === "zstd"
            ? "application/vnd.oci.image.layer.v1.tar+zstd"
            : "application/vnd.docker.image.rootfs.diff.tar";
      layers.push({ mediaType, digest: f.digest, size: f.size });
    }
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: mediaTypes.dockerManifest,
        config: { mediaType: mediaTypes.dockerConfig, size: config.size, digest: config.digest },
        layers,
      }),
    );
    const digest = sha256Digest(manifest);
    const existed = await store.has(digest);
    await store.writeBlob({ digest, size: manifest.length }, manifest);
    if (!existed) written.push(digest);
    const target: Descriptor = { mediaType: mediaTypes.dockerManifest, digest, size: manifest.length };
    const tags = Array.isArray(e.RepoTags)
      ? e.RepoTags.filter((t): t is string => typeof t === "string")
      : [];
    for (const tag of tags) {
      parseReference(tag);
      images.push({ name: normalizeReference(tag), target });
    }
    if (tags.length === 0)
      images.push({
        name: normalizeReference(`${baseName ?? `import-${digestHex(digest).slice(0, 12)}`}:latest`),
        target,
      });
  }
  return { images, written };
}

async function firstBytes(store: ContentStore, digest: string): Promise<Buffer> {
  const s = store.openRead(digest);
  try {
    for await (const c of s) return (c as Buffer).subarray(0, 4);
    return Buffer.alloc(0);
  } finally {
    s.destroy();
  }
}
