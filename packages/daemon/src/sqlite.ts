// Opens a better-sqlite3 database. Installed, tsruncd is a bundle with no node_modules beside
// it: its launcher names the native addon's path in a global, which is passed on here.
import Sqlite from "better-sqlite3";

export type Database = Sqlite.Database;

export function openSqlite(path: string, options: Sqlite.Options = {}): Database {
  const binding = (globalThis as { __tsruncSqliteBinding?: string }).__tsruncSqliteBinding;
  return new Sqlite(path, binding ? { ...options, nativeBinding: binding } : options);
}
