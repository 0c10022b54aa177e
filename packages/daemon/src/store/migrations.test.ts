import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Code } from "@tsrunc/ttrpc";
import Sqlite from "better-sqlite3";
import t from "tap";
import { MetadataStore } from "./metadata-store.js";
import { type Migration, migrate, migrations, schemaVersion, userVersion } from "./migrations.js";
import { container, tempDir } from "./test-support.js";

const tables = (db: Sqlite.Database) =>
  db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all();

t.test("an empty file is migrated to the current version", async (t) => {
  const path = join(tempDir(t), "meta.db");
  writeFileSync(path, "");
  const store = MetadataStore.open(path);
  t.equal(store.schemaVersion, schemaVersion);
  t.equal(schemaVersion, migrations.length);
  store.close();
  const raw = new Sqlite(path);
  t.teardown(() => raw.close());
  const have = tables(raw);
  // Every migration's tables (later ones add more).
  for (const table of ["container_extensions", "container_labels", "containers", "tasks"])
    t.ok(have.includes(table), `table ${table} (1)`);
  for (const table of ["images", "image_labels", "image_target_annotations", "leases", "lease_content"])
    t.ok(have.includes(table), `table ${table} (2)`);
  t.equal(userVersion(raw), schemaVersion);
});

t.test("a file from a newer schema is refused, and left as it was", async (t) => {
  const path = join(tempDir(t), "meta.db");
  MetadataStore.open(path).close();
  const raw = new Sqlite(path);
  raw.pragma(`user_version = ${schemaVersion + 1}`);
  raw.close();
  t.throws(() => MetadataStore.open(path), {
    code: Code.FailedPrecondition,
    message: new RegExp(
      `has schema version ${schemaVersion + 1}, newer than the ${schemaVersion} this tsruncd knows; refusing to open it`,
    ),
  });
  const again = new Sqlite(path);
  t.teardown(() => again.close());
  t.equal(userVersion(again), schemaVersion + 1);
});

t.test("a later migration runs on existing data; one that throws leaves the version before it", async (t) => {
  const path = join(tempDir(t), "meta.db");
  const store = MetadataStore.open(path);
  store.createContainer(container("c"));
  store.close();

  const db = new Sqlite(path);
  t.teardown(() => db.close());
  const broken: Migration = {
    version: schemaVersion + 1,
    description: "half a migration",
    up: (db) => {
      db.exec("CREATE TABLE half (x INTEGER)");
      throw new Error("disk on fire");
    },
  };
  t.throws(() => migrate(db, path, [...migrations, broken]), { message: "disk on fire" });
  t.equal(userVersion(db), schemaVersion, "still the version before it");
  t.notOk(tables(db).includes("half"), "the half-done change was rolled back");

  const good: Migration = {
    version: schemaVersion + 1,
    description: "a column",
    up: (db) => db.exec("ALTER TABLE containers ADD COLUMN note TEXT NOT NULL DEFAULT 'n'"),
  };
  t.equal(migrate(db, path, [...migrations, good]), schemaVersion + 1);
  t.equal(db.prepare("SELECT note FROM containers WHERE id = 'c'").pluck().get(), "n");
  t.equal(migrate(db, path, [...migrations, good]), schemaVersion + 1, "running it again is a no-op");
  t.throws(() => migrate(db, path, migrations), { code: Code.FailedPrecondition }, "the old code refuses it");

  t.throws(
    () => migrate(db, path, [good]),
    new RegExp(`migration #0 has version ${schemaVersion + 1}, expected 1`),
    "gaps are a bug",
  );
});
