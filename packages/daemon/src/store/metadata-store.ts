// The daemon's durable metadata: containers (containerd's Containers API records) and tasks
// (what the daemon needs to find a shim again), in one SQLite file. See README.md for the
// design: WAL, synchronous=FULL, every method one transaction, user_version migrations.

import {
  chmodSync,
  closeSync,
  fchmodSync,
  constants as fs,
  fstatSync,
  mkdirSync,
  openSync,
  statSync,
} from "node:fs";
import { dirname, resolve } from "node:path";
import { identifierProblem } from "@tsrunc/shim-contract/identifiers";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import type Sqlite from "better-sqlite3";
import { openSqlite } from "../sqlite.js";
import { containerFields, parseFilters } from "./filters.js";
import { migrate, userVersion } from "./migrations.js";
import {
  type AnyValue,
  type ContainerPatch,
  type ContainerRecord,
  type NewContainer,
  type NewTask,
  type TaskPatch,
  type TaskPhase,
  type TaskRecord,
  taskPhases,
} from "./records.js";

export interface OpenOptions {
  /** FULL (default) survives power loss; NORMAL only a process crash. See README.md. */
  synchronous?: "FULL" | "NORMAL";
  /** How long a statement waits for a lock another connection holds. Default 5000 ms. */
  busyTimeoutMs?: number;
}

/** containerd's limit on a label: key and value together, in bytes. */
export const maxLabelSize = 4096;

// ---- rows -------------------------------------------------------------------------------------

interface ContainerRow {
  namespace: string;
  id: string;
  image: string;
  runtime_name: string;
  runtime_options_type: string | null;
  runtime_options_value: Uint8Array | null;
  spec_type: string | null;
  spec_value: Uint8Array | null;
  snapshotter: string;
  snapshot_key: string;
  sandbox_id: string;
  created_at: number;
  updated_at: number;
}

interface LabelRow {
  container_id: string;
  key: string;
  value: string;
}

interface ExtensionRow {
  container_id: string;
  name: string;
  type_url: string;
  value: Uint8Array;
}

interface TaskRow {
  namespace: string;
  id: string;
  phase: string;
  bundle: string;
  shim_binary: string;
  address: string;
  pid: number;
  exit_status: number;
  exited_at: number | null;
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: number;
  runtime_options: Uint8Array | null;
  network: string | null;
  updated_at: number;
}

type Key = [namespace: string, id: string];

function prepareStatements(db: Sqlite.Database) {
  return {
    container: db.prepare<Key, ContainerRow>("SELECT * FROM containers WHERE namespace = ? AND id = ?"),
    containers: db.prepare<[string], ContainerRow>(
      "SELECT * FROM containers WHERE namespace = ? ORDER BY id",
    ),
    labels: db.prepare<Key, LabelRow>(
      "SELECT container_id, key, value FROM container_labels WHERE namespace = ? AND container_id = ?",
    ),
    labelsIn: db.prepare<[string], LabelRow>(
      "SELECT container_id, key, value FROM container_labels WHERE namespace = ?",
    ),
    extensions: db.prepare<Key, ExtensionRow>(
      "SELECT container_id, name, type_url, value FROM container_extensions WHERE namespace = ? AND container_id = ?",
    ),
    extensionsIn: db.prepare<[string], ExtensionRow>(
      "SELECT container_id, name, type_url, value FROM container_extensions WHERE namespace = ?",
    ),
    insertContainer: db.prepare<[ContainerRow]>(
      `INSERT INTO containers (namespace, id, image, runtime_name, runtime_options_type, runtime_options_value,
         spec_type, spec_value, snapshotter, snapshot_key, sandbox_id, created_at, updated_at)
       VALUES (@namespace, @id, @image, @runtime_name, @runtime_options_type, @runtime_options_value,
         @spec_type, @spec_value, @snapshotter, @snapshot_key, @sandbox_id, @created_at, @updated_at)`,
    ),
    updateContainer: db.prepare<[ContainerRow]>(
      `UPDATE containers SET image = @image, runtime_name = @runtime_name,
         runtime_options_type = @runtime_options_type, runtime_options_value = @runtime_options_value,
         spec_type = @spec_type, spec_value = @spec_value, snapshotter = @snapshotter,
         snapshot_key = @snapshot_key, sandbox_id = @sandbox_id, updated_at = @updated_at
       WHERE namespace = @namespace AND id = @id`,
    ),
    deleteContainer: db.prepare<Key>("DELETE FROM containers WHERE namespace = ? AND id = ?"),
    deleteLabels: db.prepare<Key>("DELETE FROM container_labels WHERE namespace = ? AND container_id = ?"),
    insertLabel: db.prepare<[string, string, string, string]>(
      "INSERT INTO container_labels (namespace, container_id, key, value) VALUES (?, ?, ?, ?)",
    ),
    deleteExtensions: db.prepare<Key>(
      "DELETE FROM container_extensions WHERE namespace = ? AND container_id = ?",
    ),
    insertExtension: db.prepare<[string, string, string, string, Uint8Array]>(
      "INSERT INTO container_extensions (namespace, container_id, name, type_url, value) VALUES (?, ?, ?, ?, ?)",
    ),
    task: db.prepare<Key, TaskRow>("SELECT * FROM tasks WHERE namespace = ? AND id = ?"),
    tasks: db.prepare<[], TaskRow>("SELECT * FROM tasks ORDER BY namespace, id"),
    tasksIn: db.prepare<[string], TaskRow>("SELECT * FROM tasks WHERE namespace = ? ORDER BY id"),
    // An upsert, not INSERT OR REPLACE: REPLACE deletes the old row first, which would fire
    // ON DELETE actions of any table that comes to reference tasks.
    putTask: db.prepare<[TaskRow]>(
      `INSERT INTO tasks (namespace, id, phase, bundle, shim_binary, address, pid, exit_status, exited_at,
         stdin, stdout, stderr, terminal, runtime_options, network, updated_at)
       VALUES (@namespace, @id, @phase, @bundle, @shim_binary, @address, @pid, @exit_status, @exited_at,
         @stdin, @stdout, @stderr, @terminal, @runtime_options, @network, @updated_at)
       ON CONFLICT (namespace, id) DO UPDATE SET phase = excluded.phase, bundle = excluded.bundle,
         shim_binary = excluded.shim_binary, address = excluded.address, pid = excluded.pid,
         exit_status = excluded.exit_status, exited_at = excluded.exited_at, stdin = excluded.stdin,
         stdout = excluded.stdout, stderr = excluded.stderr, terminal = excluded.terminal,
         runtime_options = excluded.runtime_options, network = excluded.network,
         updated_at = excluded.updated_at`,
    ),
    deleteTask: db.prepare<Key>("DELETE FROM tasks WHERE namespace = ? AND id = ?"),
    namespaces: db.prepare<[], { namespace: string }>(
      "SELECT DISTINCT namespace FROM containers ORDER BY namespace",
    ),
  };
}

// ---- the store --------------------------------------------------------------------------------

export class MetadataStore {
  private readonly sql: ReturnType<typeof prepareStatements>;
  // One wrapper, reused; better-sqlite3 turns nested calls into savepoints.
  private readonly tx: Sqlite.Transaction<(fn: () => unknown) => unknown>;

  private constructor(
    private readonly db: Sqlite.Database,
    /** The database file. */
    readonly path: string,
  ) {
    this.sql = prepareStatements(db);
    this.tx = db.transaction((fn: () => unknown) => fn());
  }

  /**
   * Opens (creating if needed) the store at `path`: the directory is made 0700, the file 0600,
   * the journal WAL, and the schema is migrated to the version this code writes. A file whose
   * schema is newer is refused with FailedPrecondition.
   */
  static open(path: string, options: OpenOptions = {}): MetadataStore {
    path = resolve(path);
    preparePrivateFile(path);
    const db = openSqlite(path);
    try {
      db.pragma(`busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMs ?? 5000))}`);
      const mode = db.pragma("journal_mode = WAL", { simple: true });
      if (mode !== "wal") throw new Error(`journal_mode is ${String(mode)}, not wal`);
      db.pragma(`synchronous = ${options.synchronous === "NORMAL" ? "NORMAL" : "FULL"}`);
      db.pragma("foreign_keys = ON");
      migrate(db, path);
      return new MetadataStore(db, path);
    } catch (err) {
      db.close();
      if (err instanceof TtrpcError) throw err;
      throw new TtrpcError(Code.Internal, `metadata store ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** Closes the file (SQLite checkpoints the WAL into it). Idempotent. */
  close(): void {
    if (this.db.open) this.db.close();
  }

  /** The open database, for the record kinds kept in modules of their own (image-store.ts). */
  get database(): Sqlite.Database {
    return this.db;
  }

  /** The schema version of the open file (PRAGMA user_version). */
  get schemaVersion(): number {
    return userVersion(this.db);
  }

  /**
   * Runs `fn` in one IMMEDIATE transaction and returns what it returns; if it throws, every
   * change it made is rolled back and the error rethrown. Nested calls (the store's own methods
   * included) become savepoints of the outer one. `fn` must be synchronous.
   */
  transaction<T>(fn: () => T): T {
    return this.tx.immediate(fn) as T;
  }

  /** A consistent read: DEFERRED, so it never waits for the write lock. */
  private read<T>(fn: () => T): T {
    return this.tx.deferred(fn) as T;
  }

  /** Problems PRAGMA integrity_check and foreign_key_check report; empty when all is well. */
  integrityProblems(): string[] {
    const problems = (this.db.pragma("integrity_check") as { integrity_check: string }[])
      .map((r) => r.integrity_check)
      .filter((m) => m !== "ok");
    for (const r of this.db.pragma("foreign_key_check") as { table: string; rowid: number; parent: string }[])
      problems.push(`foreign key: a row of ${r.table} has no parent in ${r.parent}`);
    return problems;
  }

  // ---- containers -----------------------------------------------------------------------------

  /** Creates a container record; AlreadyExists if (namespace, id) is taken. */
  createContainer(init: NewContainer): ContainerRecord {
    const now = new Date();
    const rec: ContainerRecord = {
      namespace: init.namespace,
      id: init.id,
      labels: cleanLabels(init.labels ?? {}),
      image: init.image ?? "",
      runtime: copyRuntime(init.runtime),
      ...(init.spec ? { spec: copyAny(init.spec) } : {}),
      snapshotter: init.snapshotter ?? "",
      snapshotKey: init.snapshotKey ?? "",
      extensions: copyExtensions(init.extensions ?? {}),
      sandboxId: init.sandboxId ?? "",
      createdAt: now,
      updatedAt: now,
    };
    checkIdentifier(rec.namespace, "namespace");
    checkIdentifier(rec.id, "container.ID");
    validateContainer(rec);
    return this.transaction(() => {
      if (this.sql.container.get(rec.namespace, rec.id)) throw alreadyExists("container", rec.id);
      this.sql.insertContainer.run(containerRow(rec));
      this.writeChildren(rec);
      return rec;
    });
  }

  /** The container, or NotFound. */
  getContainer(namespace: string, id: string): ContainerRecord {
    const rec = this.findContainer(namespace, id);
    if (!rec) throw notFound("container", id);
    return rec;
  }

  /** The container, or undefined. */
  findContainer(namespace: string, id: string): ContainerRecord | undefined {
    return this.read(() => {
      const row = this.sql.container.get(namespace, id);
      if (!row) return undefined;
      return containerRecord(row, this.sql.labels.all(namespace, id), this.sql.extensions.all(namespace, id));
    });
  }

  /**
   * The containers of `namespace` (ordered by id) that match any of `filters` (containerd's
   * syntax, see filters.ts; none = all). A bad filter is InvalidArgument.
   */
  listContainers(namespace: string, filters: readonly string[] = []): ContainerRecord[] {
    const match = parseFilters(filters);
    const records = this.read(() => {
      const labels = groupBy(this.sql.labelsIn.all(namespace));
      const extensions = groupBy(this.sql.extensionsIn.all(namespace));
      return this.sql.containers
        .all(namespace)
        .map((row) => containerRecord(row, labels.get(row.id) ?? [], extensions.get(row.id) ?? []));
    });
    return records.filter((rec) => match(containerFields(rec)));
  }

  /**
   * containerd's Update. With `fieldPaths`, exactly those fields are taken from `patch` (a field
   * named but absent in `patch` is cleared): "labels", "labels.<key>", "extensions",
   * "extensions.<key>", "spec", "image", "snapshotkey"; any other path is InvalidArgument.
   * Without field paths, each of those five fields present in `patch` replaces the stored one,
   * and a `snapshotter` or `runtime.name` that differs from the stored one is InvalidArgument
   * (immutable); like containerd, createdAt, updatedAt, sandboxId and runtime.options in the
   * patch are ignored. An `id` or `namespace` that differs is InvalidArgument. NotFound if absent.
   */
  updateContainer(
    namespace: string,
    id: string,
    patch: ContainerPatch,
    fieldPaths: readonly string[] = [],
  ): ContainerRecord {
    if (patch.id !== undefined && patch.id !== id)
      throw invalid(`container.ID field is immutable (${JSON.stringify(patch.id)} != ${JSON.stringify(id)})`);
    if (patch.namespace !== undefined && patch.namespace !== namespace)
      throw invalid("container namespace is immutable");
    return this.transaction(() => {
      const cur = this.findContainer(namespace, id);
      if (!cur) throw notFound("container", id);
      let paths = fieldPaths;
      if (paths.length === 0) {
        if (patch.snapshotter !== undefined && patch.snapshotter !== cur.snapshotter)
          throw invalid("container.Snapshotter field is immutable");
        if (patch.runtime !== undefined && patch.runtime.name !== cur.runtime.name)
          throw invalid("container.Runtime.Name field is immutable");
        const given = {
          labels: patch.labels,
          spec: patch.spec,
          extensions: patch.extensions,
          image: patch.image,
          snapshotkey: patch.snapshotKey,
        };
        paths = Object.entries(given)
          .filter(([, v]) => v !== undefined)
          .map(([k]) => k);
      }
      const next: ContainerRecord = { ...cur, labels: { ...cur.labels }, extensions: { ...cur.extensions } };
      const labels = new Map(Object.entries(next.labels));
      const extensions = new Map(Object.entries(next.extensions));
      for (const path of paths) {
        if (path.startsWith("labels.")) {
          const key = path.slice("labels.".length);
          const value = patch.labels && Object.hasOwn(patch.labels, key) ? patch.labels[key] : undefined;
          if (value) labels.set(key, value);
          else labels.delete(key);
          continue;
        }
        if (path.startsWith("extensions.")) {
          const key = path.slice("extensions.".length);
          const value =
            patch.extensions && Object.hasOwn(patch.extensions, key) ? patch.extensions[key] : undefined;
          if (value) extensions.set(key, copyAny(value));
          else extensions.delete(key);
          continue;
        }
        switch (path) {
          case "labels":
            labels.clear();
            for (const [k, v] of Object.entries(patch.labels ?? {})) if (v) labels.set(k, v);
            break;
          case "extensions":
            extensions.clear();
            for (const [k, v] of Object.entries(patch.extensions ?? {})) extensions.set(k, copyAny(v));
            break;
          case "spec":
            if (patch.spec) next.spec = copyAny(patch.spec);
            else delete next.spec;
            break;
          case "image":
            next.image = patch.image ?? "";
            break;
          case "snapshotkey":
            next.snapshotKey = patch.snapshotKey ?? "";
            break;
          default:
            throw invalid(`cannot update ${JSON.stringify(path)} field on ${JSON.stringify(id)}`);
        }
      }
      next.labels = Object.fromEntries(labels);
      next.extensions = Object.fromEntries(extensions);
      validateContainer(next);
      next.updatedAt = new Date();
      this.sql.updateContainer.run(containerRow(next));
      this.writeChildren(next);
      return next;
    });
  }

  /** Deletes a container; NotFound if absent, FailedPrecondition while it has a task. */
  deleteContainer(namespace: string, id: string): void {
    this.transaction(() => {
      if (!this.sql.container.get(namespace, id)) throw notFound("container", id);
      if (this.sql.task.get(namespace, id))
        throw new TtrpcError(
          Code.FailedPrecondition,
          `cannot delete container ${JSON.stringify(id)}: it still has a task`,
        );
      this.sql.deleteContainer.run(namespace, id); // labels and extensions cascade
    });
  }

  /** The namespaces that hold at least one container, sorted. */
  namespaces(): string[] {
    return this.sql.namespaces.all().map((r) => r.namespace);
  }

  private writeChildren(rec: ContainerRecord): void {
    const { namespace, id } = rec;
    this.sql.deleteLabels.run(namespace, id);
    for (const [k, v] of Object.entries(rec.labels)) this.sql.insertLabel.run(namespace, id, k, v);
    this.sql.deleteExtensions.run(namespace, id);
    for (const [k, v] of Object.entries(rec.extensions))
      this.sql.insertExtension.run(namespace, id, k, v.typeUrl, v.value);
  }

  // ---- tasks ----------------------------------------------------------------------------------

  /** Inserts or replaces the task of a container; NotFound if the container does not exist. */
  putTask(init: NewTask): TaskRecord {
    const rec: TaskRecord = {
      namespace: init.namespace,
      id: init.id,
      phase: init.phase,
      bundle: init.bundle,
      shimBinary: init.shimBinary ?? "",
      address: init.address ?? "",
      pid: init.pid ?? 0,
      exitStatus: init.exitStatus ?? 0,
      ...(init.exitedAt ? { exitedAt: new Date(init.exitedAt) } : {}),
      stdin: init.stdin ?? "",
      stdout: init.stdout ?? "",
      stderr: init.stderr ?? "",
      terminal: init.terminal ?? false,
      ...(init.runtimeOptions ? { runtimeOptions: new Uint8Array(init.runtimeOptions) } : {}),
      ...(init.network !== undefined ? { network: cloneJson(init.network) } : {}),
      updatedAt: init.updatedAt ? new Date(init.updatedAt) : new Date(),
    };
    validateTask(rec);
    return this.transaction(() => {
      if (!this.sql.container.get(rec.namespace, rec.id)) throw notFound("container", rec.id);
      this.sql.putTask.run(taskRow(rec));
      return rec;
    });
  }

  /** The task, or NotFound. */
  getTask(namespace: string, id: string): TaskRecord {
    const rec = this.findTask(namespace, id);
    if (!rec) throw notFound("task", id);
    return rec;
  }

  /** The task, or undefined. */
  findTask(namespace: string, id: string): TaskRecord | undefined {
    const row = this.sql.task.get(namespace, id);
    return row && taskRecord(row);
  }

  /** The tasks of one namespace, or of all, ordered by (namespace, id). */
  listTasks(namespace?: string): TaskRecord[] {
    const rows = namespace === undefined ? this.sql.tasks.all() : this.sql.tasksIn.all(namespace);
    return rows.map(taskRecord);
  }

  /** Changes some fields of a task (see TaskPatch); NotFound if there is no task. */
  updateTask(namespace: string, id: string, patch: TaskPatch): TaskRecord {
    const p = patch as Partial<TaskRecord>;
    if ((p.id !== undefined && p.id !== id) || (p.namespace !== undefined && p.namespace !== namespace))
      throw invalid("a task's namespace and id are immutable");
    return this.transaction(() => {
      const cur = this.findTask(namespace, id);
      if (!cur) throw notFound("task", id);
      const next: TaskRecord = { ...cur };
      const set = next as unknown as Record<string, unknown>;
      for (const [k, v] of Object.entries(patch)) {
        if (k === "namespace" || k === "id") continue;
        if (k === "exitedAt" || k === "runtimeOptions" || k === "network") {
          if (v === undefined) delete set[k];
          else set[k] = k === "exitedAt" ? new Date(v as Date) : k === "network" ? cloneJson(v) : v;
        } else if (v !== undefined) {
          set[k] = v;
        }
      }
      if (next.runtimeOptions) next.runtimeOptions = new Uint8Array(next.runtimeOptions);
      next.updatedAt = patch.updatedAt ? new Date(patch.updatedAt) : new Date();
      validateTask(next);
      this.sql.putTask.run(taskRow(next));
      return next;
    });
  }

  /** Deletes a task; NotFound if there is none. */
  deleteTask(namespace: string, id: string): void {
    this.transaction(() => {
      if (this.sql.deleteTask.run(namespace, id).changes === 0) throw notFound("task", id);
    });
  }
}

// ---- helpers ----------------------------------------------------------------------------------

function notFound(what: string, id: string): TtrpcError {
  return new TtrpcError(Code.NotFound, `${what} ${JSON.stringify(id)}: not found`);
}

function alreadyExists(what: string, id: string): TtrpcError {
  return new TtrpcError(Code.AlreadyExists, `${what} ${JSON.stringify(id)}: already exists`);
}

function invalid(message: string): TtrpcError {
  return new TtrpcError(Code.InvalidArgument, message);
}

function checkIdentifier(value: string, what: string): void {
  const problem = identifierProblem(value);
  if (problem) throw invalid(`${what}: ${problem}`);
}

/** containerd's validateContainer, minus "Spec must be set" (our records may omit it). */
function validateContainer(rec: ContainerRecord): void {
  for (const k of Object.keys(rec.extensions))
    if (k === "") throw invalid("container.Extension keys must not be zero-length");
  for (const [k, v] of Object.entries(rec.labels)) {
    const size = Buffer.byteLength(k) + Buffer.byteLength(v);
    if (size > maxLabelSize)
      throw invalid(
        `label key and value length (${size} bytes) greater than maximum size (${maxLabelSize} bytes), key: ${k}`,
      );
  }
  if (!rec.runtime.name) throw invalid("container.Runtime.Name must be set");
  if (rec.snapshotKey !== "" && rec.snapshotter === "")
    throw invalid("container.Snapshotter must be set if container.SnapshotKey is set");
}

function validateTask(rec: TaskRecord): void {
  checkIdentifier(rec.namespace, "namespace");
  checkIdentifier(rec.id, "task id");
  if (!(taskPhases as readonly string[]).includes(rec.phase))
    throw invalid(`task phase ${JSON.stringify(rec.phase)} is not one of ${taskPhases.join(", ")}`);
  if (!Number.isSafeInteger(rec.pid) || rec.pid < 0) throw invalid(`task pid ${rec.pid} is not a pid`);
  if (!Number.isInteger(rec.exitStatus) || rec.exitStatus < 0 || rec.exitStatus > 0xffffffff)
    throw invalid(`task exit status ${rec.exitStatus} is not a uint32`);
  if (rec.exitedAt && Number.isNaN(rec.exitedAt.getTime()))
    throw invalid("task exitedAt is not a valid date");
  if (Number.isNaN(rec.updatedAt.getTime())) throw invalid("task updatedAt is not a valid date");
}

/** Labels as containerd stores them: an empty value is no label. */
function cleanLabels(labels: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(labels).filter(([, v]) => v !== ""));
}

function copyAny(a: AnyValue): AnyValue {
  return { typeUrl: a.typeUrl, value: new Uint8Array(a.value) };
}

function copyExtensions(ext: Record<string, AnyValue>): Record<string, AnyValue> {
  return Object.fromEntries(Object.entries(ext).map(([k, v]) => [k, copyAny(v)]));
}

function copyRuntime(r: ContainerRecord["runtime"]): ContainerRecord["runtime"] {
  return r.options ? { name: r.name, options: copyAny(r.options) } : { name: r.name };
}

function cloneJson(v: unknown): unknown {
  let text: string | undefined;
  try {
    text = JSON.stringify(v);
  } catch (err) {
    throw invalid(`task network state is not JSON: ${(err as Error).message}`);
  }
  if (text === undefined) throw invalid("task network state is not JSON");
  return JSON.parse(text);
}

/** better-sqlite3 hands out Buffers; records carry plain Uint8Arrays. */
function bytes(b: Uint8Array): Uint8Array {
  return new Uint8Array(b);
}

function containerRow(rec: ContainerRecord): ContainerRow {
  return {
    namespace: rec.namespace,
    id: rec.id,
    image: rec.image,
    runtime_name: rec.runtime.name,
    runtime_options_type: rec.runtime.options?.typeUrl ?? null,
    runtime_options_value: rec.runtime.options?.value ?? null,
    spec_type: rec.spec?.typeUrl ?? null,
    spec_value: rec.spec?.value ?? null,
    snapshotter: rec.snapshotter,
    snapshot_key: rec.snapshotKey,
    sandbox_id: rec.sandboxId,
    created_at: rec.createdAt.getTime(),
    updated_at: rec.updatedAt.getTime(),
  };
}

function containerRecord(row: ContainerRow, labels: LabelRow[], extensions: ExtensionRow[]): ContainerRecord {
  const runtime: ContainerRecord["runtime"] = { name: row.runtime_name };
  if (row.runtime_options_type !== null && row.runtime_options_value !== null)
    runtime.options = { typeUrl: row.runtime_options_type, value: bytes(row.runtime_options_value) };
  return {
    namespace: row.namespace,
    id: row.id,
    labels: Object.fromEntries(labels.map((l) => [l.key, l.value])),
    image: row.image,
    runtime,
    ...(row.spec_type !== null && row.spec_value !== null
      ? { spec: { typeUrl: row.spec_type, value: bytes(row.spec_value) } }
      : {}),
    snapshotter: row.snapshotter,
    snapshotKey: row.snapshot_key,
    extensions: Object.fromEntries(
      extensions.map((e) => [e.name, { typeUrl: e.type_url, value: bytes(e.value) }]),
    ),
    sandboxId: row.sandbox_id,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}

function groupBy<R extends { container_id: string }>(rows: R[]): Map<string, R[]> {
  const out = new Map<string, R[]>();
  for (const r of rows) {
    const list = out.get(r.container_id);
    if (list) list.push(r);
    else out.set(r.container_id, [r]);
  }
  return out;
}

function taskRow(rec: TaskRecord): TaskRow {
  return {
    namespace: rec.namespace,
    id: rec.id,
    phase: rec.phase,
    bundle: rec.bundle,
    shim_binary: rec.shimBinary,
    address: rec.address,
    pid: rec.pid,
    exit_status: rec.exitStatus,
    exited_at: rec.exitedAt ? rec.exitedAt.getTime() : null,
    stdin: rec.stdin,
    stdout: rec.stdout,
    stderr: rec.stderr,
    terminal: rec.terminal ? 1 : 0,
    runtime_options: rec.runtimeOptions ?? null,
    network: rec.network === undefined ? null : JSON.stringify(rec.network),
    updated_at: rec.updatedAt.getTime(),
  };
}

function taskRecord(row: TaskRow): TaskRecord {
  return {
    namespace: row.namespace,
    id: row.id,
    phase: row.phase as TaskPhase,
    bundle: row.bundle,
    shimBinary: row.shim_binary,
    address: row.address,
    pid: row.pid,
    exitStatus: row.exit_status,
    ...(row.exited_at !== null ? { exitedAt: new Date(row.exited_at) } : {}),
    stdin: row.stdin,
    stdout: row.stdout,
    stderr: row.stderr,
    terminal: row.terminal === 1,
    ...(row.runtime_options !== null ? { runtimeOptions: bytes(row.runtime_options) } : {}),
    ...(row.network !== null ? { network: JSON.parse(row.network) as unknown } : {}),
    updatedAt: new Date(row.updated_at),
  };
}

/**
 * Makes the file's directory (0700 when we create it, or tighten it when we own it and it is
 * not a shared sticky directory like /tmp) and the file itself (0600) before SQLite opens it:
 * SQLite would create it 0644 & ~umask, and gives its -wal and -shm files the file's mode.
 */
function preparePrivateFile(path: string): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  const sticky = (st.mode & 0o1000) !== 0;
  if (!sticky && st.uid === process.getuid?.() && (st.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
  const fd = openSync(path, fs.O_RDWR | fs.O_CREAT | fs.O_NOFOLLOW, 0o600);
  try {
    if (!fstatSync(fd).isFile()) throw new Error(`${path} is not a regular file`);
    fchmodSync(fd, 0o600);
  } finally {
    closeSync(fd);
  }
}
