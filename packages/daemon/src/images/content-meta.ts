// What containerd's Content service keeps per namespace beside a blob: its labels and when they
// were set (`ctr pull` labels manifests with containerd.io/gc.ref.content.*, layers with
// containerd.io/uncompressed, configs with containerd.io/gc.ref.snapshot.overlayfs). The blobs
// themselves are shared by every namespace (<root>/content); this is <root>/content-meta.db, a
// SQLite file of its own (WAL, synchronous=FULL). A row whose blob is gone is dropped when the
// blob is deleted here or by the GC, and at open; one left by a crash in between only keeps
// labels for a blob that comes back with the same digest (harmless: labels are not roots here).

import { checkLabelSizes } from "../label-rules.js";
import { type Database, openSqlite } from "../sqlite.js";

export interface ContentMetaRow {
  createdAt: Date;
  updatedAt: Date;
  labels: Record<string, string>;
}

const schema = `
CREATE TABLE IF NOT EXISTS content_meta (
  namespace  TEXT NOT NULL,
  digest     TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  labels     TEXT NOT NULL,
  PRIMARY KEY (namespace, digest)
) STRICT, WITHOUT ROWID;
`;

/** containerd's label rule: key and value together at most 4096 bytes; an empty key is refused. */
export function checkContentLabels(labels: Record<string, string>): Record<string, string> {
  // 64: as much of a key as containerd's labels.Validate quotes.
  return checkLabelSizes(labels, 64);
}

interface Row {
  created_at: number;
  updated_at: number;
  labels: string;
}

export class ContentMeta {
  readonly #db: Database;
  readonly #get;
  readonly #all;
  readonly #put;
  readonly #forget;
  readonly #digests;
  readonly #roots;

  constructor(path: string) {
    this.#db = openSqlite(path);
    this.#db.pragma("journal_mode = WAL");
    this.#db.pragma("synchronous = FULL");
    this.#db.pragma("busy_timeout = 5000");
    this.#db.exec(schema);
    this.#get = this.#db.prepare<[string, string], Row>(
      "SELECT created_at, updated_at, labels FROM content_meta WHERE namespace = ? AND digest = ?",
    );
    this.#all = this.#db.prepare<[string], Row & { digest: string }>(
      "SELECT digest, created_at, updated_at, labels FROM content_meta WHERE namespace = ?",
    );
    this.#put = this.#db.prepare<[string, string, number, number, string]>(
      `INSERT INTO content_meta (namespace, digest, created_at, updated_at, labels) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (namespace, digest) DO UPDATE SET updated_at = excluded.updated_at, labels = excluded.labels`,
    );
    this.#forget = this.#db.prepare<[string]>("DELETE FROM content_meta WHERE digest = ?");
    this.#digests = this.#db.prepare<[], { digest: string }>("SELECT DISTINCT digest FROM content_meta");
    this.#roots = this.#db.prepare<[], { digest: string }>(
      `SELECT DISTINCT digest FROM content_meta WHERE json_extract(labels, '$."containerd.io/gc.root"') IS NOT NULL`,
    );
  }

  /** Blobs labelled containerd.io/gc.root in some namespace: roots of the GC, as in containerd. */
  roots(): Set<string> {
    return new Set(this.#roots.all().map((r) => r.digest));
  }

  get(namespace: string, digest: string): ContentMetaRow | undefined {
    const r = this.#get.get(namespace, digest);
    return r ? toRow(r) : undefined;
  }

  /** Every row of a namespace, by digest. */
  all(namespace: string): Map<string, ContentMetaRow> {
    return new Map(this.#all.all(namespace).map((r) => [r.digest, toRow(r)]));
  }

  /** Sets a blob's labels in a namespace (created now when it had no row). */
  set(namespace: string, digest: string, labels: Record<string, string>): ContentMetaRow {
    const now = Date.now();
    this.#put.run(namespace, digest, now, now, JSON.stringify(checkContentLabels(labels)));
    return this.get(namespace, digest)!;
  }

  /** Drops a blob's rows in every namespace (the blob was deleted). */
  forget(...digests: string[]): void {
    this.#db.transaction(() => {
      for (const d of digests) this.#forget.run(d);
    })();
  }

  /** Drops the rows of blobs `exists` says are gone; returns how many digests. */
  sweep(exists: (digest: string) => boolean): number {
    const gone = this.#digests
      .all()
      .map((r) => r.digest)
      .filter((d) => !exists(d));
    if (gone.length) this.forget(...gone);
    return gone.length;
  }

  close(): void {
    this.#db.close();
  }
}

function toRow(r: Row): ContentMetaRow {
  let labels: Record<string, string> = {};
  try {
    const parsed = JSON.parse(r.labels) as unknown;
    if (typeof parsed === "object" && parsed !== null) labels = parsed as Record<string, string>;
  } catch {
    // unreadable: no labels
  }
  return { createdAt: new Date(r.created_at), updatedAt: new Date(r.updated_at), labels };
}
