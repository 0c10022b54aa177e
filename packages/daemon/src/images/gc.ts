// Garbage collection of blobs, snapshots and ingests: mark from the roots, sweep the rest.
// The design (roots, grace periods, why it is safe against operations in flight) is in the
// daemon's README, "Design: images and garbage collection".

import { stat } from "node:fs/promises";
import { type ContentStore, chainIds } from "@tsrunc/images";
import { isIndexType, isManifestType } from "@tsrunc/images/distribution";
import type { Logger } from "pino";
import type { ImageStore } from "../store/image-store.js";
import type { MetadataStore } from "../store/index.js";
import type { ContentMeta } from "./content-meta.js";
import type { LeaseManager } from "./leases.js";
import type { Snapshotters } from "./snapshotters.js";

export interface GcReport {
  blobsRemoved: number;
  snapshotsRemoved: number;
  ingestsRemoved: number;
  bytesFreed: number;
}

export interface GcOptions {
  /** At boot no operation is in flight: unreferenced active snapshots go whatever their age. */
  boot?: boolean;
}

/** Snapshot keys our own operations use for a while; kept only while the namespace has a lease. */
export const transientSnapshotPrefixes = ["extract-", "tsrunc-view-"];

/** containerd's label that makes a snapshot or a blob a root of its own (`ctr snapshots … --label`). */
export const gcRootLabel = "containerd.io/gc.root";

/** An active snapshot or view no container names is kept this long (a client between Prepare and Containers.Create). */
export const activeGraceMs = 60_000;

const digestAtEnd = /sha256:[0-9a-f]{64}$/;
const maxJson = 16 * 1024 * 1024;

export interface GcDeps {
  content: ContentStore;
  snapshotters: Snapshotters;
  images: ImageStore;
  metadata: MetadataStore;
  leases: LeaseManager;
  log: Logger;
  /** Labels of content per namespace (Content service): a removed blob's are dropped. */
  contentMeta?: ContentMeta;
}

export class GarbageCollector {
  #tail: Promise<unknown> = Promise.resolve();
  #pending: Promise<GcReport> | undefined;

  constructor(private readonly d: GcDeps) {}

  /**
   * Runs a collection after the one in progress (runs are never concurrent); a request made
   * while another is still waiting to start shares that one.
   */
  collect(options: GcOptions = {}): Promise<GcReport> {
    if (this.#pending && !options.boot) return this.#pending;
    const run: Promise<GcReport> = this.#tail.then(() => {
      if (this.#pending === run) this.#pending = undefined;
      return this.#run(options);
    });
    this.#pending = run;
    this.#tail = run.catch(() => {});
    return run;
  }

  /** Starts a collection and logs its outcome (Images.Delete without sync). */
  collectInBackground(why: string): void {
    this.collect().then(
      (r) => this.d.log.debug({ ...r, why }, "gc done"),
      (err: unknown) => this.d.log.warn({ err: (err as Error).message, why }, "gc failed"),
    );
  }

  async #run(options: GcOptions): Promise<GcReport> {
    const { content, snapshotters, images, metadata, leases, log } = this.d;
    const started = Date.now();
    const report: GcReport = { blobsRemoved: 0, snapshotsRemoved: 0, ingestsRemoved: 0, bytesFreed: 0 };
    // Taken once, before the records are read: a pull whose lease is live now may write its record
    // after the mark and drop its lease before the sweep; what it made (created after its lease
    // began) must still be kept. Read again per item, the floor rose in that gap and a Prune took
    // a finishing pull's snapshots (test/daemon-images, "GC while pulling").
    const floor = Math.min(leases.floor(), started);

    // ---- mark: blobs reachable from image records, chain ids per namespace -------------------
    const durable = images.liveLeaseContent(started);
    const keepBlobs = new Set<string>(durable);
    // Content labelled containerd.io/gc.root (e.g. `ctr snapshots diff --keep`) is a root too.
    for (const d of this.d.contentMeta?.roots() ?? []) keepBlobs.add(d);
    const chainsByNs = new Map<string, Set<string>>();
    for (const rec of images.all()) {
      let chains = chainsByNs.get(rec.namespace);
      if (!chains) {
        chains = new Set();
        chainsByNs.set(rec.namespace, chains);
      }
      await this.#markContent(rec.target, keepBlobs, chains, 0);
    }

    // ---- snapshots, namespace by namespace ---------------------------------------------------
    for (const ns of await snapshotters.namespaces()) {
      const sn = await snapshotters.get(ns);
      const infos = await sn.list();
      const byKey = new Map(infos.map((i) => [i.key, i]));
      const keep = new Set<string>(chainsByNs.get(ns) ?? []);
      for (const c of metadata.listContainers(ns))
        if (c.snapshotKey && (c.snapshotter === "" || c.snapshotter === "overlayfs")) keep.add(c.snapshotKey);
      const busy = leases.busy(ns);
      const now = Date.now();
      for (const info of infos) {
        if (leases.holdsSnapshot(ns, info.key) || Object.hasOwn(info.labels, gcRootLabel)) keep.add(info.key);
        else if (transientSnapshotPrefixes.some((p) => info.key.startsWith(p))) {
          if (busy) keep.add(info.key);
        } else if (info.kind === "committed") {
          if (info.created.getTime() >= floor) keep.add(info.key);
        } else if (!options.boot && now - info.created.getTime() < activeGraceMs) keep.add(info.key);
      }
      // A kept snapshot keeps its parents.
      for (const key of [...keep]) {
        let parent = byKey.get(key)?.parent;
        while (parent !== undefined && !keep.has(parent)) {
          keep.add(parent);
          parent = byKey.get(parent)?.parent;
        }
      }
      // Remove leaves first, until nothing removable is left.
      const doomed = new Set(infos.filter((i) => !keep.has(i.key)).map((i) => i.key));
      for (let progress = true; progress && doomed.size > 0; ) {
        progress = false;
        const parents = new Set<string>();
        for (const i of infos) if (i.parent !== undefined && byKey.has(i.key)) parents.add(i.parent);
        for (const key of [...doomed]) {
          if (parents.has(key)) continue;
          doomed.delete(key);
          // Checked again at the last moment: an operation may have taken it meanwhile.
          if (leases.holdsSnapshot(ns, key)) continue;
          try {
            const usage =
              byKey.get(key)?.kind === "committed" ? await sn.usage(key).catch(() => undefined) : undefined;
            await sn.remove(key);
            byKey.delete(key);
            report.snapshotsRemoved++;
            report.bytesFreed += usage?.size ?? 0;
            progress = true;
          } catch (err) {
            log.warn({ namespace: ns, key, err: (err as Error).message }, "gc: snapshot not removed");
          }
        }
      }
    }

    // ---- blobs --------------------------------------------------------------------------------
    for (const blob of await content.list()) {
      if (keepBlobs.has(blob.digest)) continue;
      let appeared: number;
      try {
        appeared = (await stat(content.blobPath(blob.digest))).ctimeMs;
      } catch {
        continue;
      }
      if (appeared >= floor || leases.holdsBlob(blob.digest)) continue;
      try {
        await content.delete(blob.digest);
        this.d.contentMeta?.forget(blob.digest);
        report.blobsRemoved++;
        report.bytesFreed += blob.size;
      } catch (err) {
        log.warn({ digest: blob.digest, err: (err as Error).message }, "gc: blob not removed");
      }
    }

    // ---- ingests: kept while a pull holds them (in memory, or durably for a resume) ----------
    report.ingestsRemoved = await content.abortIngests((ref) => {
      if (ref !== undefined && leases.holdsIngest(ref)) return true;
      const digest = ref?.match(digestAtEnd)?.[0];
      return digest !== undefined && (durable.has(digest) || leases.holdsBlob(digest));
    });

    log.info({ ...report, ms: Date.now() - started, boot: options.boot === true }, "gc");
    return report;
  }

  /**
   * Blobs the image records of the namespaces `which` accepts reach (index → manifests → config +
   * layers): what Content.Delete of another namespace must not remove.
   */
  async reachable(which: (namespace: string) => boolean): Promise<Set<string>> {
    const keep = new Set<string>();
    const chains = new Set<string>();
    for (const rec of this.d.images.all())
      if (which(rec.namespace)) await this.#markContent(rec.target, keep, chains, 0);
    return keep;
  }

  /** Marks a descriptor's blob and what it references (index → manifests → config + layers). */
  async #markContent(
    desc: { mediaType: string; digest: string },
    keep: Set<string>,
    chains: Set<string>,
    depth: number,
  ): Promise<void> {
    if (depth > 8 || keep.has(desc.digest)) {
      keep.add(desc.digest);
      return;
    }
    keep.add(desc.digest);
    const info = await this.d.content.info(desc.digest).catch(() => undefined);
    if (!info || info.size > maxJson) return;
    const known = isIndexType(desc.mediaType) || isManifestType(desc.mediaType);
    // Unknown media types are looked into only when small (a config or a manifest, never a layer).
    if (!known && info.size > 1024 * 1024) return;
    let doc: unknown;
    try {
      doc = JSON.parse((await this.d.content.readBlob(desc.digest, maxJson)).toString("utf8"));
    } catch {
      return; // not JSON (a layer) or unreadable: nothing below it
    }
    if (typeof doc !== "object" || doc === null) return;
    const o = doc as { manifests?: unknown; config?: unknown; layers?: unknown };
    if (Array.isArray(o.manifests)) {
      for (const m of o.manifests) if (isDesc(m)) await this.#markContent(descOf(m), keep, chains, depth + 1);
    }
    if (isDesc(o.config) && Array.isArray(o.layers)) {
      keep.add(o.config.digest);
      for (const l of o.layers) if (isDesc(l)) keep.add(l.digest);
      try {
        const config = JSON.parse(
          (await this.d.content.readBlob(o.config.digest, maxJson)).toString("utf8"),
        ) as {
          rootfs?: { diff_ids?: unknown };
        };
        const diffIds = config.rootfs?.diff_ids;
        if (Array.isArray(diffIds) && diffIds.every((d) => typeof d === "string"))
          for (const c of chainIds(diffIds as string[])) chains.add(c);
      } catch {
        // config missing or not JSON: no snapshots to keep for it
      }
    }
  }
}

function isDesc(d: unknown): d is { mediaType: string; digest: string } {
  if (typeof d !== "object" || d === null) return false;
  const o = d as { digest?: unknown; mediaType?: unknown };
  return typeof o.digest === "string" && /^sha256:[0-9a-f]{64}$/.test(o.digest);
}

const descOf = (d: { mediaType?: unknown; digest: string }) => ({
  mediaType: typeof d.mediaType === "string" ? d.mediaType : "",
  digest: d.digest,
});
