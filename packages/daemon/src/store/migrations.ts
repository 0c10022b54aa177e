// The schema, as an ordered list of migrations. PRAGMA user_version is the version a file is at;
// each migration runs in its own IMMEDIATE transaction together with the bump of user_version,
// so a crash mid-migration leaves the file at the version before it. Never edit a migration
// that has shipped: add the next one.

import { Code, TtrpcError } from "@tsrunc/ttrpc";
import type { Database } from "better-sqlite3";

export interface Migration {
  version: number;
  description: string;
  up(db: Database): void;
}

// Timestamps are milliseconds since the epoch (INTEGER); Any values are (type_url, value) pairs;
// booleans are 0/1. STRICT tables: a wrongly typed value is an error, not a silent conversion.
const v1 = `
CREATE TABLE containers (
  namespace             TEXT NOT NULL,
  id                    TEXT NOT NULL,
  image                 TEXT NOT NULL,
  runtime_name          TEXT NOT NULL,
  runtime_options_type  TEXT,
  runtime_options_value BLOB,
  spec_type             TEXT,
  spec_value            BLOB,
  snapshotter           TEXT NOT NULL,
  snapshot_key          TEXT NOT NULL,
  sandbox_id            TEXT NOT NULL,
  created_at            INTEGER NOT NULL,
  updated_at            INTEGER NOT NULL,
  PRIMARY KEY (namespace, id)
) STRICT, WITHOUT ROWID;

CREATE TABLE container_labels (
  namespace    TEXT NOT NULL,
  container_id TEXT NOT NULL,
  key          TEXT NOT NULL,
  value        TEXT NOT NULL,
  PRIMARY KEY (namespace, container_id, key),
  FOREIGN KEY (namespace, container_id) REFERENCES containers (namespace, id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE TABLE container_extensions (
  namespace    TEXT NOT NULL,
  container_id TEXT NOT NULL,
  name         TEXT NOT NULL,
  type_url     TEXT NOT NULL,
  value        BLOB NOT NULL,
  PRIMARY KEY (namespace, container_id, name),
  FOREIGN KEY (namespace, container_id) REFERENCES containers (namespace, id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- No ON DELETE: a container that still has a task cannot be deleted.
CREATE TABLE tasks (
  namespace       TEXT NOT NULL,
  id              TEXT NOT NULL,
  phase           TEXT NOT NULL
                  CHECK (phase IN ('creating', 'created', 'running', 'paused', 'stopped', 'deleting')),
  bundle          TEXT NOT NULL,
  shim_binary     TEXT NOT NULL,
  address         TEXT NOT NULL,
  pid             INTEGER NOT NULL,
  exit_status     INTEGER NOT NULL,
  exited_at       INTEGER,
  stdin           TEXT NOT NULL,
  stdout          TEXT NOT NULL,
  stderr          TEXT NOT NULL,
  terminal        INTEGER NOT NULL CHECK (terminal IN (0, 1)),
  runtime_options BLOB,
  network         TEXT,
  updated_at      INTEGER NOT NULL,
  PRIMARY KEY (namespace, id),
  FOREIGN KEY (namespace, id) REFERENCES containers (namespace, id)
) STRICT, WITHOUT ROWID;
`;

// Image records (containerd's images.Image: a name → a target descriptor, labels), and the
// durable half of leases: a pull's lease names the blobs it has fetched so far, so the GC after a
// crash keeps them (and their ingests) for the pull run again to reuse, until the lease expires.
const v2 = `
CREATE TABLE images (
  namespace         TEXT NOT NULL,
  name              TEXT NOT NULL,
  target_media_type TEXT NOT NULL,
  target_digest     TEXT NOT NULL,
  target_size       INTEGER NOT NULL,
  created_at        INTEGER NOT NULL,
  updated_at        INTEGER NOT NULL,
  PRIMARY KEY (namespace, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE image_labels (
  namespace  TEXT NOT NULL,
  image_name TEXT NOT NULL,
  key        TEXT NOT NULL,
  value      TEXT NOT NULL,
  PRIMARY KEY (namespace, image_name, key),
  FOREIGN KEY (namespace, image_name) REFERENCES images (namespace, name) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE TABLE image_target_annotations (
  namespace  TEXT NOT NULL,
  image_name TEXT NOT NULL,
  key        TEXT NOT NULL,
  value      TEXT NOT NULL,
  PRIMARY KEY (namespace, image_name, key),
  FOREIGN KEY (namespace, image_name) REFERENCES images (namespace, name) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

CREATE TABLE leases (
  id         TEXT NOT NULL PRIMARY KEY,
  namespace  TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE lease_content (
  lease_id TEXT NOT NULL,
  digest   TEXT NOT NULL,
  PRIMARY KEY (lease_id, digest),
  FOREIGN KEY (lease_id) REFERENCES leases (id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
`;

// CNI networks (packages/daemon/src/cni): one row per container that has, or may still have,
// networks, written before any plugin runs and kept with its error until a DEL succeeds. No
// foreign key to containers: a pending teardown outlives the container record.
const v3 = `
CREATE TABLE networks (
  namespace    TEXT NOT NULL,
  container_id TEXT NOT NULL,
  phase        TEXT NOT NULL CHECK (phase IN ('attaching', 'attached', 'detaching')),
  netns        TEXT NOT NULL,
  plan         TEXT NOT NULL,
  results      TEXT NOT NULL,
  error        TEXT,
  attempts     INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL,
  PRIMARY KEY (namespace, container_id)
) STRICT, WITHOUT ROWID;
`;

/** Every migration, oldest first; versions are 1, 2, 3, … without gaps. */
export const migrations: readonly Migration[] = [
  { version: 1, description: "containers, their labels and extensions, tasks", up: (db) => db.exec(v1) },
  { version: 2, description: "image records, their labels; pull leases", up: (db) => db.exec(v2) },
  { version: 3, description: "CNI networks of containers", up: (db) => db.exec(v3) },
];

/** The schema version this code writes. */
export const schemaVersion = migrations.length;

/** The file's PRAGMA user_version. */
export function userVersion(db: Database): number {
  return db.pragma("user_version", { simple: true }) as number;
}

/**
 * Brings the database at `db` up to the last of `list` and returns the version it ends at.
 * Refuses (FailedPrecondition) a file written by a newer schema than `list` knows.
 */
export function migrate(db: Database, path: string, list: readonly Migration[] = migrations): number {
  list.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration #${i} has version ${m.version}, expected ${i + 1}`);
  });
  const known = list.length;
  const refuseNewer = (found: number) => {
    if (found > known)
      throw new TtrpcError(
        Code.FailedPrecondition,
        `metadata store ${path} has schema version ${found}, newer than the ${known} this tsruncd knows; ` +
          "refusing to open it (was it written by a newer tsruncd?)",
      );
  };
  refuseNewer(userVersion(db));
  for (const m of list) {
    if (m.version <= userVersion(db)) continue;
    db.transaction(() => {
      // Read again under the write lock: another process may have migrated meanwhile.
      const current = userVersion(db);
      refuseNewer(current);
      if (m.version <= current) return;
      m.up(db);
      db.pragma(`user_version = ${m.version}`);
    }).immediate();
  }
  return userVersion(db);
}
