// The snapshotter's metadata: one small SQLite file (better-sqlite3, WAL, synchronous=FULL) with a
// row per snapshot. A row's id names its directory (<root>/snapshots/<id>) and never changes;
// commit renames the key and turns the row committed. Parents are referenced by id.

import { Code, TtrpcError } from "@tsrunc/ttrpc/status";
import Database from "better-sqlite3";

export type SnapshotKind = "committed" | "active" | "view";

export interface SnapshotRow {
  id: number;
  key: string;
  kind: SnapshotKind;
  parentId: number | null;
  labels: Record<string, string>;
  created: number;
  updated: number;
  size: number | null;
  inodes: number | null;
}

interface RawRow {
  id: number;
  key: string;
  kind: SnapshotKind;
  parent_id: number | null;
  labels: string;
  created: number;
  updated: number;
  size: number | null;
  inodes: number | null;
}

const schema = `
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL CHECK (kind IN ('committed', 'active', 'view')),
  parent_id INTEGER REFERENCES snapshots(id),
  labels TEXT NOT NULL DEFAULT '{}',
  created INTEGER NOT NULL,
  updated INTEGER NOT NULL,
  size INTEGER,
  inodes INTEGER
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id);
`;

function toRow(r: RawRow): SnapshotRow {
  return {
    id: r.id,
    key: r.key,
    kind: r.kind,
    parentId: r.parent_id,
    labels: JSON.parse(r.labels) as Record<string, string>,
    created: r.created,
    updated: r.updated,
    size: r.size,
    inodes: r.inodes,
  };
}

export class SnapshotMetadata {
  readonly #db: Database.Database;

  constructor(path: string) {
    // Inside tsruncd's bundle better-sqlite3 cannot find its addon by itself: the launcher names
    // its path in this global (as for the daemon's own database, packages/daemon/src/sqlite.ts).
    const binding = (globalThis as { __tsruncSqliteBinding?: string }).__tsruncSqliteBinding;
    this.#db = new Database(path, binding ? { nativeBinding: binding } : {});
    this.#db.pragma("journal_mode = WAL");
    this.#db.pragma("synchronous = FULL");
    this.#db.pragma("foreign_keys = ON");
    this.#db.pragma("busy_timeout = 5000");
    this.#db.exec(schema);
  }

  close(): void {
    this.#db.close();
  }

  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn).immediate();
  }

  getMeta(k: string): string | undefined {
    const r = this.#db.prepare("SELECT v FROM meta WHERE k = ?").get(k) as { v: string } | undefined;
    return r?.v;
  }

  setMeta(k: string, v: string): void {
    this.#db
      .prepare("INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v")
      .run(k, v);
  }

  byKey(key: string): SnapshotRow | undefined {
    const r = this.#db.prepare("SELECT * FROM snapshots WHERE key = ?").get(key) as RawRow | undefined;
    return r && toRow(r);
  }

  byId(id: number): SnapshotRow | undefined {
    const r = this.#db.prepare("SELECT * FROM snapshots WHERE id = ?").get(id) as RawRow | undefined;
    return r && toRow(r);
  }

  /** The row and its ancestors, the row first. */
  chain(row: SnapshotRow): SnapshotRow[] {
    const out = [row];
    let cur = row;
    while (cur.parentId !== null) {
      const p = this.byId(cur.parentId);
      if (!p) throw new TtrpcError(Code.Internal, `snapshot ${cur.key}: parent ${cur.parentId} missing`);
      out.push(p);
      cur = p;
    }
    return out;
  }

  all(): SnapshotRow[] {
    return (this.#db.prepare("SELECT * FROM snapshots ORDER BY id").all() as RawRow[]).map(toRow);
  }

  ids(): Set<number> {
    return new Set((this.#db.prepare("SELECT id FROM snapshots").all() as { id: number }[]).map((r) => r.id));
  }

  hasChildren(id: number): boolean {
    return this.#db.prepare("SELECT 1 FROM snapshots WHERE parent_id = ? LIMIT 1").get(id) !== undefined;
  }

  insert(key: string, kind: SnapshotKind, parentId: number | null, labels: Record<string, string>): number {
    const now = Date.now();
    try {
      const r = this.#db
        .prepare(
          "INSERT INTO snapshots (key, kind, parent_id, labels, created, updated) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .run(key, kind, parentId, JSON.stringify(labels), now, now);
      return Number(r.lastInsertRowid);
    } catch (err) {
      if ((err as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE")
        throw new TtrpcError(Code.AlreadyExists, `snapshot ${key}: already exists`);
      throw err;
    }
  }

  commit(
    id: number,
    name: string,
    labels: Record<string, string>,
    usage: { size: number; inodes: number },
  ): void {
    try {
      this.#db
        .prepare(
          "UPDATE snapshots SET key = ?, kind = 'committed', labels = ?, size = ?, inodes = ?, updated = ? WHERE id = ?",
        )
        .run(name, JSON.stringify(labels), usage.size, usage.inodes, Date.now(), id);
    } catch (err) {
      if ((err as { code?: string }).code === "SQLITE_CONSTRAINT_UNIQUE")
        throw new TtrpcError(Code.AlreadyExists, `snapshot ${name}: already exists`);
      throw err;
    }
  }

  updateLabels(id: number, labels: Record<string, string>): void {
    this.#db
      .prepare("UPDATE snapshots SET labels = ?, updated = ? WHERE id = ?")
      .run(JSON.stringify(labels), Date.now(), id);
  }

  delete(id: number): void {
    this.#db.prepare("DELETE FROM snapshots WHERE id = ?").run(id);
  }
}
