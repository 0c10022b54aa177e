// One daemon per root. The lock is a kernel lock, not a pid file: an SQLite database opened in
// exclusive locking mode holds a POSIX write lock for as long as the process lives, and the
// kernel drops it when the process dies, however it dies. A second daemon fails to take it at
// once (no busy wait) and says which root is in use.

import { chmodSync } from "node:fs";
import { join } from "node:path";
import { openSqlite } from "./sqlite.js";

export class RootLockedError extends Error {}

export interface RootLock {
  release(): void;
}

export function lockRoot(root: string): RootLock {
  const path = join(root, "tsruncd.lock");
  const db = openSqlite(path, { timeout: 0 });
  try {
    db.pragma("locking_mode = EXCLUSIVE");
    // The first write in exclusive mode takes the lock and keeps it until close.
    db.exec("BEGIN EXCLUSIVE");
    db.exec("CREATE TABLE IF NOT EXISTS holder (pid INTEGER)");
    db.exec("DELETE FROM holder");
    db.prepare("INSERT INTO holder (pid) VALUES (?)").run(process.pid);
    db.exec("COMMIT");
    chmodSync(path, 0o600);
  } catch (err) {
    db.close();
    if ((err as { code?: string }).code === "SQLITE_BUSY")
      throw new RootLockedError(`another tsruncd is already running on ${root}`);
    throw err;
  }
  return { release: () => db.close() };
}
