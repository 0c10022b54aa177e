// Images through tsruncd: containerd's Images service (the records: name → target descriptor)
// and our ImageTools (pull, import, export, config, prune), which tsruncd runs itself where
// containerd's clients do the work client-side. The client never names a path the daemon would
// open: an import's bytes and an export's bytes travel on the connection.

import type { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  ImagesService,
  ImageToolsService,
  type imagesapi,
  type imagetools,
  type MessageInit,
  type types,
} from "@tsrunc/protocol";
import { type CallOptions, type Client, type ClientStub, Code, TtrpcError } from "@tsrunc/ttrpc";
import type { CallOpts } from "./client.js";

export type Image = imagesapi.Image;
export type PullProgress = imagetools.PullProgress;
export type PruneResult = imagetools.PruneResponse;
export type Descriptor = types.Descriptor;

/** The snapshotter tsruncd unpacks into (containerd's name for it). */
export const DEFAULT_SNAPSHOTTER = "overlayfs";
/** Import chunks stay well under ttrpc's 4 MiB message limit. */
export const IMPORT_CHUNK_BYTES = 1 << 20;

export interface PullInit {
  /** "busybox", "docker.io/library/busybox:latest", "127.0.0.1:5000/x@sha256:…" */
  ref: string;
  /** "os/arch[/variant]"; the daemon's host platform when left out. */
  platform?: string;
  /** Speak plain HTTP to the registry (a loopback registry without TLS). */
  plainHttp?: boolean;
  /** Extra CA certificates (PEM) to trust besides the system's. */
  caPem?: Uint8Array | string;
  username?: string;
  password?: string;
  /** Unpack into snapshots after fetching (default true, as ctr). */
  unpack?: boolean;
  snapshotter?: string;
  /** Layers fetched at once (0 or left out: the daemon's default). */
  maxConcurrentDownloads?: number;
}

export interface PullOpts extends CallOpts {
  /** Called with every progress message, in order. */
  onProgress?: (p: PullProgress) => void;
}

export interface ImportInit {
  /** Unpack the imported images (default true, as ctr). */
  unpack?: boolean;
  snapshotter?: string;
  /** The name given to an image the archive does not name. */
  baseName?: string;
  /** The platform to unpack (the host's when left out). */
  platform?: string;
}

export interface ImportOpts extends CallOpts {
  /** Called after each chunk went out, with the bytes sent so far. */
  onBytes?: (sent: number) => void;
}

export interface ConfigInit {
  name: string;
  platform?: string;
  /** "" or left out: the image's own User; else "name", "uid", "name:group" or "uid:gid". */
  user?: string;
}

/** What a container needs of an image: its config, the snapshot parent and the resolved user. */
export interface ImageConfigResult {
  /** The image config blob, parsed (OCI image-spec config JSON). */
  config: OciImageConfigFile;
  /** The raw blob as stored. */
  raw: Uint8Array;
  /** The top layer's chain id: the parent for Snapshots.Prepare. */
  chainId: string;
  uid: number;
  gid: number;
  additionalGids: number[];
  manifest: Descriptor | undefined;
}

/** The parts of an OCI image config (image-spec config.md) a container is built from. */
export interface OciImageRuntimeConfig {
  User?: string;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  ExposedPorts?: Record<string, unknown>;
  Volumes?: Record<string, unknown>;
}

export interface OciImageConfigFile {
  architecture?: string;
  os?: string;
  variant?: string;
  created?: string;
  config?: OciImageRuntimeConfig;
  rootfs?: { type: string; diff_ids: string[] };
  [key: string]: unknown;
}

const stringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");

/**
 * Parses an image config blob, keeping only well-typed runtime fields (a null Cmd or a string
 * where a list belongs is dropped rather than trusted).
 */
export function parseImageConfig(raw: Uint8Array): OciImageConfigFile {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("utf8"));
  } catch (err) {
    throw new TtrpcError(Code.DataLoss, `the image config is not JSON: ${(err as Error).message}`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v))
    throw new TtrpcError(Code.DataLoss, "the image config is not a JSON object");
  const file = v as OciImageConfigFile;
  const c = (file as { config?: unknown }).config;
  const out: OciImageRuntimeConfig = {};
  if (c !== null && typeof c === "object" && !Array.isArray(c)) {
    const r = c as Record<string, unknown>;
    if (typeof r.User === "string") out.User = r.User;
    if (typeof r.WorkingDir === "string") out.WorkingDir = r.WorkingDir;
    if (typeof r.StopSignal === "string") out.StopSignal = r.StopSignal;
    for (const k of ["Env", "Entrypoint", "Cmd"] as const) if (stringList(r[k])) out[k] = r[k];
    if (r.Labels !== null && typeof r.Labels === "object") out.Labels = r.Labels as Record<string, string>;
    if (r.ExposedPorts !== null && typeof r.ExposedPorts === "object")
      out.ExposedPorts = r.ExposedPorts as Record<string, unknown>;
    if (r.Volumes !== null && typeof r.Volumes === "object")
      out.Volumes = r.Volumes as Record<string, unknown>;
  }
  return { ...file, config: out };
}

type OptsFn = (o: CallOpts | undefined) => CallOptions;

/** containerd.services.images.v1.Images and tsrunc.services.images.v1.ImageTools. */
export class ImagesApi {
  readonly #images: ClientStub<typeof ImagesService>;
  readonly #tools: ClientStub<typeof ImageToolsService>;
  readonly #opts: OptsFn;

  /** @internal */
  constructor(client: Client, opts: OptsFn) {
    this.#images = client.service(ImagesService);
    this.#tools = client.service(ImageToolsService);
    this.#opts = opts;
  }

  /** The image record of `name` (NotFound when there is none). */
  async get(name: string, o?: CallOpts): Promise<Image> {
    const res = await this.#images.get({ name }, this.#opts(o));
    if (res.image === undefined) throw new TtrpcError(Code.NotFound, `image ${name} not found`);
    return res.image;
  }

  /** Every image of the namespace, or those matching any of containerd's filters. */
  async list(filters: string[] = [], o?: CallOpts): Promise<Image[]> {
    return (await this.#images.list({ filters }, this.#opts(o))).images;
  }

  async create(image: MessageInit<Image> & { name: string }, o?: CallOpts): Promise<Image> {
    return (await this.#images.create({ image }, this.#opts(o))).image;
  }

  /** Replaces the fields named by `fieldPaths` (all updatable ones when empty). */
  async update(
    image: MessageInit<Image> & { name: string },
    fieldPaths: string[] = [],
    o?: CallOpts,
  ): Promise<Image> {
    const updateMask = fieldPaths.length > 0 ? { paths: fieldPaths } : undefined;
    return (await this.#images.update({ image, updateMask }, this.#opts(o))).image;
  }

  /** Removes the record; its blobs and snapshots go at the next prune (or at once with `sync`). */
  async delete(name: string, o?: CallOpts & { sync?: boolean }): Promise<void> {
    await this.#images.delete({ name, sync: o?.sync ?? false }, this.#opts(o));
  }

  /** A pull's progress messages as the daemon sends them; the last is "complete" with the image. */
  pullProgress(req: PullInit, o?: CallOpts): AsyncIterable<PullProgress> {
    const caPem = typeof req.caPem === "string" ? new TextEncoder().encode(req.caPem) : req.caPem;
    return this.#tools.pull(
      {
        ref: req.ref,
        platform: req.platform ?? "",
        plainHttp: req.plainHttp ?? false,
        caPem,
        username: req.username ?? "",
        password: req.password ?? "",
        unpack: req.unpack ?? true,
        snapshotter: req.snapshotter ?? DEFAULT_SNAPSHOTTER,
        maxConcurrentDownloads: req.maxConcurrentDownloads ?? 0,
      },
      this.#opts(o),
    );
  }

  /** Pulls (and by default unpacks) an image; resolves to its record. */
  async pull(req: PullInit, o?: PullOpts): Promise<Image> {
    let image: Image | undefined;
    for await (const p of this.pullProgress(req, o)) {
      o?.onProgress?.(p);
      if (p.status === "complete" && p.image !== undefined) image = p.image;
    }
    if (image === undefined)
      throw new TtrpcError(Code.Internal, `tsruncd ended the pull of ${req.ref} without its image`);
    return image;
  }

  /**
   * Imports an OCI image-layout or docker-archive tar (gzip'd or not) read from `source`; the
   * daemon names the images (archive names, or `baseName`). A failing source cancels the call.
   */
  async import(
    source: Readable | AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    init: ImportInit = {},
    o?: ImportOpts,
  ): Promise<Image[]> {
    const inner = new AbortController();
    const outer = o?.signal;
    const onAbort = () => inner.abort(outer?.reason);
    if (outer?.aborted) onAbort();
    outer?.addEventListener("abort", onAbort, { once: true });
    const call = this.#tools.import(this.#opts({ ...o, signal: inner.signal }));
    call.response.catch(() => {}); // awaited below; a send failure must not leave it unhandled
    let options: MessageInit<imagetools.ImportOptions> | undefined = {
      unpack: init.unpack ?? true,
      snapshotter: init.snapshotter ?? DEFAULT_SNAPSHOTTER,
      baseName: init.baseName ?? "",
      platform: init.platform ?? "",
    };
    let sent = 0;
    try {
      for await (const chunk of source as AsyncIterable<Uint8Array | string> | Iterable<Uint8Array>) {
        const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
        for (let at = 0; at < bytes.byteLength; at += IMPORT_CHUNK_BYTES) {
          const data = bytes.subarray(at, at + IMPORT_CHUNK_BYTES);
          await call.send(options === undefined ? { data } : { data, options });
          options = undefined;
          sent += data.byteLength;
          o?.onBytes?.(sent);
        }
      }
      if (options !== undefined) await call.send({ options }); // an empty source: the daemon says why
      call.closeSend();
    } catch (err) {
      inner.abort(err);
      // The daemon's answer explains a refused send better than the send's own error.
      const answer = await call.response.then(
        () => undefined,
        (e: unknown) => e,
      );
      throw answer instanceof TtrpcError && answer.code !== Code.Canceled ? answer : err;
    } finally {
      outer?.removeEventListener("abort", onAbort);
    }
    return (await call.response).images;
  }

  /** An OCI archive of the named images (as `ctr images import` takes it), chunk by chunk. */
  exportStream(names: string[], o?: CallOpts & { platform?: string }): AsyncIterable<Uint8Array> {
    const chunks = this.#tools.export({ names, platform: o?.platform ?? "" }, this.#opts(o));
    return {
      async *[Symbol.asyncIterator]() {
        for await (const c of chunks) if (c.data.byteLength > 0) yield c.data;
      },
    };
  }

  /** Writes the OCI archive of the named images to `dest`, then ends it. */
  async export(names: string[], dest: Writable, o?: CallOpts & { platform?: string }): Promise<void> {
    await pipeline(this.exportStream(names, o), dest);
  }

  /** The image's config, its top chain id, and the user resolved in its /etc/passwd and /etc/group. */
  async config(req: ConfigInit, o?: CallOpts): Promise<ImageConfigResult> {
    const res = await this.#tools.config(
      { name: req.name, platform: req.platform ?? "", user: req.user ?? "" },
      this.#opts(o),
    );
    return {
      config: parseImageConfig(res.config),
      raw: res.config,
      chainId: res.chainId,
      uid: res.uid,
      gid: res.gid,
      additionalGids: res.additionalGids,
      manifest: res.manifest,
    };
  }

  /** Collects blobs and snapshots no image, container or operation uses (`all`: unused images too). */
  prune(req: { all?: boolean } = {}, o?: CallOpts): Promise<PruneResult> {
    return this.#tools.prune({ all: req.all ?? false }, this.#opts(o));
  }
}
