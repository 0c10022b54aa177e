// The daemon's image machinery in one place: the content store (<root>/content), the
// per-namespace snapshotters (<root>/snapshots/<ns>), image records and pull leases (in the
// metadata database), in-memory leases and the garbage collector. The services
// (services/images.ts, snapshots.ts, image-tools.ts) are transport-free handlers over this.

import { join } from "node:path";
import { ContentStore, type SnapshotterBackend } from "@tsrunc/images";
import type { Logger } from "pino";
import { KeyedMutex } from "../keyed-mutex.js";
import { ImageStore } from "../store/image-store.js";
import type { MetadataStore } from "../store/index.js";
import { ContentMeta } from "./content-meta.js";
import { GarbageCollector } from "./gc.js";
import { LeaseManager } from "./leases.js";
import { Snapshotters } from "./snapshotters.js";

export interface ImageSystemOptions {
  /** The daemon's --root. */
  root: string;
  metadata: MetadataStore;
  log: Logger;
  /** Default "auto" (overlay where it mounts, else copies). */
  snapshotterBackend?: "auto" | SnapshotterBackend;
}

export class ImageSystem {
  /** "<namespace>/<key>": Diff.Apply into a snapshot, and its Commit and Remove, one at a time. */
  readonly snapshotLocks = new KeyedMutex();

  private constructor(
    readonly content: ContentStore,
    readonly snapshotters: Snapshotters,
    readonly images: ImageStore,
    readonly metadata: MetadataStore,
    readonly leases: LeaseManager,
    readonly gc: GarbageCollector,
    readonly log: Logger,
    /** Content labels per namespace (<root>/content-meta.db). */
    readonly contentMeta: ContentMeta,
  ) {}

  static async open(o: ImageSystemOptions): Promise<ImageSystem> {
    const content = await ContentStore.open(join(o.root, "content"));
    const snapshotters = new Snapshotters(join(o.root, "snapshots"), o.snapshotterBackend ?? "auto");
    const images = new ImageStore(o.metadata.database);
    const leases = new LeaseManager();
    const contentMeta = new ContentMeta(join(o.root, "content-meta.db"));
    try {
      const present = new Set((await content.list()).map((b) => b.digest));
      contentMeta.sweep((d) => present.has(d));
    } catch (err) {
      contentMeta.close();
      throw err;
    }
    const gc = new GarbageCollector({
      contentMeta,
      content,
      snapshotters,
      images,
      metadata: o.metadata,
      leases,
      log: o.log,
    });
    return new ImageSystem(content, snapshotters, images, o.metadata, leases, gc, o.log, contentMeta);
  }

  #timer: NodeJS.Timeout | undefined;

  /**
   * Collects every `everyMs` (default 30 min) while the daemon runs, so that what no request
   * triggers a collection for (a run's snapshot left by a client that crashed, an expired pull
   * lease) does not wait for the next Images.Delete, Prune or boot.
   */
  schedule(everyMs = 30 * 60_000): void {
    clearInterval(this.#timer);
    this.#timer = setInterval(() => this.gc.collectInBackground("scheduled"), everyMs);
    this.#timer.unref();
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.snapshotters.close();
    this.contentMeta.close();
  }
}
