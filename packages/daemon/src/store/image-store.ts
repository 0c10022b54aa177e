// Image records (containerd's images.Image: a name → a target descriptor, with labels) and pull
// leases, in the same SQLite file as the containers (tables of migration 2). Same rules as
// MetadataStore: every method one transaction, validated as containerd validates.

import { Code, TtrpcError } from "@tsrunc/ttrpc";
import type Sqlite from "better-sqlite3";
import { type FieldGetter, mapField, parseFilters } from "./filters.js";
import { maxLabelSize } from "./metadata-store.js";

export interface TargetDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations: Record<string, string>;
}

export interface ImageRecord {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  target: TargetDescriptor;
  createdAt: Date;
  updatedAt: Date;
}

export type NewImage = Pick<ImageRecord, "namespace" | "name" | "target"> & {
  labels?: Record<string, string>;
};

export interface ImagePatch {
  labels?: Record<string, string>;
  target?: TargetDescriptor;
}

interface ImageRow {
  namespace: string;
  name: string;
  target_media_type: string;
  target_digest: string;
  target_size: number;
  created_at: number;
  updated_at: number;
}

interface KvRow {
  image_name: string;
  key: string;
  value: string;
}

const digestRe = /^sha256:[0-9a-f]{64}$/;
const maxNameBytes = 4096;

function invalid(message: string): TtrpcError {
  return new TtrpcError(Code.InvalidArgument, message);
}

/** containerd's adaptor for an image: name, target.digest, target.mediatype, labels.<key>. */
export function imageFields(i: ImageRecord): FieldGetter {
  return (path) => {
    const present = (v: string) => (v ? v : undefined);
    switch (path[0]) {
      case "name":
        return present(i.name);
      case "target":
        if (path[1] === "digest") return present(i.target.digest);
        if (path[1] === "mediatype") return present(i.target.mediaType);
        return undefined;
      case "labels":
        return mapField(path.slice(1), i.labels);
      default:
        return undefined;
    }
  };
}

/** Throws InvalidArgument unless `name` can name an image (non-empty, bounded, no NUL). */
export function checkImageName(name: unknown): string {
  if (typeof name !== "string" || name === "") throw invalid("image name must not be empty");
  if (Buffer.byteLength(name) > maxNameBytes || name.includes("\0"))
    throw invalid("image name must be at most 4096 bytes, without NUL");
  return name;
}

function validate(rec: ImageRecord): void {
  checkImageName(rec.name);
  for (const [k, v] of Object.entries(rec.labels)) {
    const size = Buffer.byteLength(k) + Buffer.byteLength(v);
    if (size > maxLabelSize)
      throw invalid(
        `label key and value length (${size} bytes) greater than maximum size (${maxLabelSize} bytes), key: ${k}`,
      );
  }
  if (!rec.target.mediaType) throw invalid("image.Target.MediaType must be set");
  if (!rec.target.digest) throw invalid("image.Target.Digest must be set");
  if (!digestRe.test(rec.target.digest))
    throw invalid(`image.Target.Digest ${JSON.stringify(rec.target.digest)} is not a sha256 digest`);
  if (!Number.isSafeInteger(rec.target.size) || rec.target.size < 0)
    throw invalid(`image.Target.Size ${rec.target.size} is not a size`);
}

const cleanLabels = (l: Record<string, string>) =>
  Object.fromEntries(Object.entries(l).filter(([, v]) => v !== ""));

function copyTarget(t: TargetDescriptor): TargetDescriptor {
  return {
    mediaType: t.mediaType,
    digest: t.digest,
    size: t.size,
    annotations: { ...(t.annotations ?? {}) },
  };
}

export class ImageStore {
  readonly #db: Sqlite.Database;
  readonly #tx: Sqlite.Transaction<(fn: () => unknown) => unknown>;
  readonly #sql;

  constructor(db: Sqlite.Database) {
    this.#db = db;
    this.#tx = db.transaction((fn: () => unknown) => fn());
    this.#sql = {
      image: db.prepare<[string, string], ImageRow>("SELECT * FROM images WHERE namespace = ? AND name = ?"),
      images: db.prepare<[string], ImageRow>("SELECT * FROM images WHERE namespace = ? ORDER BY name"),
      allImages: db.prepare<[], ImageRow>("SELECT * FROM images ORDER BY namespace, name"),
      labels: db.prepare<[string, string], KvRow>(
        "SELECT image_name, key, value FROM image_labels WHERE namespace = ? AND image_name = ?",
      ),
      labelsIn: db.prepare<[string], KvRow>(
        "SELECT image_name, key, value FROM image_labels WHERE namespace = ?",
      ),
      annotations: db.prepare<[string, string], KvRow>(
        "SELECT image_name, key, value FROM image_target_annotations WHERE namespace = ? AND image_name = ?",
      ),
      annotationsIn: db.prepare<[string], KvRow>(
        "SELECT image_name, key, value FROM image_target_annotations WHERE namespace = ?",
      ),
      insert: db.prepare<[ImageRow]>(
        `INSERT INTO images (namespace, name, target_media_type, target_digest, target_size, created_at, updated_at)
         VALUES (@namespace, @name, @target_media_type, @target_digest, @target_size, @created_at, @updated_at)`,
      ),
      update: db.prepare<[ImageRow]>(
        `UPDATE images SET target_media_type = @target_media_type, target_digest = @target_digest,
           target_size = @target_size, updated_at = @updated_at WHERE namespace = @namespace AND name = @name`,
      ),
      delete: db.prepare<[string, string]>("DELETE FROM images WHERE namespace = ? AND name = ?"),
      deleteLabels: db.prepare<[string, string]>(
        "DELETE FROM image_labels WHERE namespace = ? AND image_name = ?",
      ),
      insertLabel: db.prepare<[string, string, string, string]>(
        "INSERT INTO image_labels (namespace, image_name, key, value) VALUES (?, ?, ?, ?)",
      ),
      deleteAnnotations: db.prepare<[string, string]>(
        "DELETE FROM image_target_annotations WHERE namespace = ? AND image_name = ?",
      ),
      insertAnnotation: db.prepare<[string, string, string, string]>(
        "INSERT INTO image_target_annotations (namespace, image_name, key, value) VALUES (?, ?, ?, ?)",
      ),
      putLease: db.prepare<[string, string, number, number]>(
        `INSERT INTO leases (id, namespace, created_at, expires_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET expires_at = excluded.expires_at`,
      ),
      addLeaseContent: db.prepare<[string, string]>(
        "INSERT OR IGNORE INTO lease_content (lease_id, digest) VALUES (?, ?)",
      ),
      deleteLease: db.prepare<[string]>("DELETE FROM leases WHERE id = ?"),
      deleteExpired: db.prepare<[number]>("DELETE FROM leases WHERE expires_at <= ?"),
      liveContent: db.prepare<[number], { digest: string }>(
        "SELECT DISTINCT c.digest FROM lease_content c JOIN leases l ON l.id = c.lease_id WHERE l.expires_at > ?",
      ),
    };
  }

  #transaction<T>(fn: () => T): T {
    return this.#tx.immediate(fn) as T;
  }

  #read<T>(fn: () => T): T {
    return this.#tx.deferred(fn) as T;
  }

  #record(row: ImageRow, labels: KvRow[], annotations: KvRow[]): ImageRecord {
    return {
      namespace: row.namespace,
      name: row.name,
      labels: Object.fromEntries(labels.map((l) => [l.key, l.value])),
      target: {
        mediaType: row.target_media_type,
        digest: row.target_digest,
        size: row.target_size,
        annotations: Object.fromEntries(annotations.map((a) => [a.key, a.value])),
      },
      createdAt: new Date(row.created_at),
      updatedAt: new Date(row.updated_at),
    };
  }

  #row(rec: ImageRecord): ImageRow {
    return {
      namespace: rec.namespace,
      name: rec.name,
      target_media_type: rec.target.mediaType,
      target_digest: rec.target.digest,
      target_size: rec.target.size,
      created_at: rec.createdAt.getTime(),
      updated_at: rec.updatedAt.getTime(),
    };
  }

  #writeChildren(rec: ImageRecord): void {
    const { namespace, name } = rec;
    this.#sql.deleteLabels.run(namespace, name);
    for (const [k, v] of Object.entries(rec.labels)) this.#sql.insertLabel.run(namespace, name, k, v);
    this.#sql.deleteAnnotations.run(namespace, name);
    for (const [k, v] of Object.entries(rec.target.annotations))
      this.#sql.insertAnnotation.run(namespace, name, k, v);
  }

  /** Creates an image record; AlreadyExists if the name is taken in the namespace. */
  create(init: NewImage): ImageRecord {
    const now = new Date();
    const rec: ImageRecord = {
      namespace: init.namespace,
      name: init.name,
      labels: cleanLabels(init.labels ?? {}),
      target: copyTarget(init.target),
      createdAt: now,
      updatedAt: now,
    };
    validate(rec);
    return this.#transaction(() => {
      if (this.#sql.image.get(rec.namespace, rec.name))
        throw new TtrpcError(Code.AlreadyExists, `image ${JSON.stringify(rec.name)}: already exists`);
      this.#sql.insert.run(this.#row(rec));
      this.#writeChildren(rec);
      return rec;
    });
  }

  /** Creates the record, or points an existing one at `target` (labels merged): what a pull or an import does. */
  put(init: NewImage): ImageRecord {
    return this.#transaction(() => {
      const cur = this.find(init.namespace, init.name);
      if (!cur) return this.create(init);
      return this.update(init.namespace, init.name, {
        target: init.target,
        labels: { ...cur.labels, ...(init.labels ?? {}) },
      });
    });
  }

  find(namespace: string, name: string): ImageRecord | undefined {
    return this.#read(() => {
      const row = this.#sql.image.get(namespace, name);
      if (!row) return undefined;
      return this.#record(
        row,
        this.#sql.labels.all(namespace, name),
        this.#sql.annotations.all(namespace, name),
      );
    });
  }

  /** The record, or NotFound. */
  get(namespace: string, name: string): ImageRecord {
    const rec = this.find(namespace, name);
    if (!rec) throw new TtrpcError(Code.NotFound, `image ${JSON.stringify(name)}: not found`);
    return rec;
  }

  /** The images of `namespace` matching any of `filters` (containerd's syntax; none = all), by name. */
  list(namespace: string, filters: readonly string[] = []): ImageRecord[] {
    const match = parseFilters(filters);
    const records = this.#read(() => {
      const labels = group(this.#sql.labelsIn.all(namespace));
      const annotations = group(this.#sql.annotationsIn.all(namespace));
      return this.#sql.images
        .all(namespace)
        .map((r) => this.#record(r, labels.get(r.name) ?? [], annotations.get(r.name) ?? []));
    });
    return records.filter((r) => match(imageFields(r)));
  }

  /** Every image record of every namespace (the GC's roots). */
  all(): ImageRecord[] {
    return this.#read(() =>
      this.#sql.allImages
        .all()
        .map((r) =>
          this.#record(
            r,
            this.#sql.labels.all(r.namespace, r.name),
            this.#sql.annotations.all(r.namespace, r.name),
          ),
        ),
    );
  }

  /**
   * containerd's Update: with `fieldPaths`, exactly those fields ("labels", "labels.<key>",
   * "target", "annotations", "annotations.<key>") are taken from `patch`; without, labels and
   * target are replaced when given. Any other path is InvalidArgument; NotFound if absent.
   */
  update(
    namespace: string,
    name: string,
    patch: ImagePatch,
    fieldPaths: readonly string[] = [],
  ): ImageRecord {
    return this.#transaction(() => {
      const cur = this.get(namespace, name);
      const next: ImageRecord = { ...cur, labels: { ...cur.labels }, target: copyTarget(cur.target) };
      const paths = [...fieldPaths];
      if (paths.length === 0) {
        if (patch.labels !== undefined) paths.push("labels");
        if (patch.target !== undefined) paths.push("target");
      }
      for (const path of paths) {
        if (path.startsWith("labels.")) {
          const key = path.slice("labels.".length);
          const v = patch.labels && Object.hasOwn(patch.labels, key) ? patch.labels[key] : undefined;
          if (v) next.labels[key] = v;
          else delete next.labels[key];
          continue;
        }
        if (path.startsWith("annotations.")) {
          const key = path.slice("annotations.".length);
          const a = patch.target?.annotations;
          const v = a && Object.hasOwn(a, key) ? a[key] : undefined;
          if (v !== undefined) next.target.annotations[key] = v;
          else delete next.target.annotations[key];
          continue;
        }
        switch (path) {
          case "labels":
            next.labels = cleanLabels(patch.labels ?? {});
            break;
          case "target":
            if (!patch.target) throw invalid("image.Target must be set to update it");
            next.target = copyTarget(patch.target);
            break;
          case "annotations":
            next.target.annotations = { ...(patch.target?.annotations ?? {}) };
            break;
          default:
            throw invalid(`cannot update ${JSON.stringify(path)} field on image ${JSON.stringify(name)}`);
        }
      }
      validate(next);
      next.updatedAt = new Date();
      this.#sql.update.run(this.#row(next));
      this.#writeChildren(next);
      return next;
    });
  }

  /** Deletes a record (labels cascade); NotFound if absent. */
  delete(namespace: string, name: string): void {
    this.#transaction(() => {
      if (this.#sql.delete.run(namespace, name).changes === 0)
        throw new TtrpcError(Code.NotFound, `image ${JSON.stringify(name)}: not found`);
    });
  }

  // ---- durable leases -------------------------------------------------------------------------

  /** Creates the lease `id` (or extends it) until `expiresAt`. */
  putLease(id: string, namespace: string, expiresAt: Date): void {
    this.#transaction(() => this.#sql.putLease.run(id, namespace, Date.now(), expiresAt.getTime()));
  }

  /** Adds blobs to a lease (ignored when the lease is gone). */
  addLeaseContent(id: string, digests: readonly string[]): void {
    this.#transaction(() => {
      for (const d of digests) {
        try {
          this.#sql.addLeaseContent.run(id, d);
        } catch (err) {
          // the lease was removed meanwhile (foreign key): nothing to protect any more
          if ((err as { code?: string }).code !== "SQLITE_CONSTRAINT_FOREIGNKEY") throw err;
        }
      }
    });
  }

  deleteLease(id: string): void {
    this.#transaction(() => this.#sql.deleteLease.run(id));
  }

  /** Removes leases that expired; returns the blobs the others hold. */
  liveLeaseContent(now = Date.now()): Set<string> {
    return this.#transaction(() => {
      this.#sql.deleteExpired.run(now);
      return new Set(this.#sql.liveContent.all(now).map((r) => r.digest));
    });
  }

  /** Exposed for tests: the database this store writes. */
  get database(): Sqlite.Database {
    return this.#db;
  }
}

function group(rows: KvRow[]): Map<string, KvRow[]> {
  const out = new Map<string, KvRow[]>();
  for (const r of rows) {
    const list = out.get(r.image_name);
    if (list) list.push(r);
    else out.set(r.image_name, [r]);
  }
  return out;
}
