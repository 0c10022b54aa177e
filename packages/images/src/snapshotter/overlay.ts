// The overlay snapshotter: snapshots as containerd's overlay snapshotter keeps them — committed
// ones (an image's layers, keyed by chain id), active ones (a container's writable rootfs, or a
// layer being unpacked) and views (read-only) — each a directory <root>/snapshots/<id>/{fs,work}
// and a row in <root>/metadata.db. Mounts are what containerd returns: for an active snapshot on
// parents `overlay` with workdir, upperdir and lowerdir (newest first); for a snapshot without
// parents, or a view of a single layer, a bind mount. Where overlayfs cannot be mounted (probed
// once per root, kept in the metadata) the same API is served by full copies ("copy" backend, as
// containerd's native snapshotter): a snapshot is a whole tree, `cp -a` of its parent, bind-mounted.
//
// Crash safety: a snapshot's directory is built under a temporary name, renamed to its id inside
// the metadata transaction that inserts its row, the directory fsynced before the commit; removal
// deletes the row first and the directory after. So a crash leaves at most a directory without a
// row, which `cleanup()` (run by open) removes; never a row without its directory.

import { randomBytes } from "node:crypto";
import { constants as fsc, renameSync, rmSync } from "node:fs";
import { lstat, mkdir, open, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { Code, TtrpcError } from "@tsrunc/ttrpc/status";
import { execa } from "execa";
import type { ApplyMode } from "../layer/apply.js";
import { type SnapshotKind, SnapshotMetadata, type SnapshotRow } from "./metadata.js";
import { type Mount, mountAll, overlayHasIndex, unmountAll } from "./mount.js";

export type { SnapshotKind } from "./metadata.js";
export type { Mount } from "./mount.js";

export type SnapshotterBackend = "overlay" | "copy";

export interface SnapshotInfo {
  key: string;
  kind: SnapshotKind;
  /** The parent's key (a committed snapshot), if any. */
  parent?: string;
  labels: Record<string, string>;
  created: Date;
  updated: Date;
}

export interface Usage {
  /** Bytes of disk used (allocated blocks); for overlay snapshots, the layer's own files only. */
  size: number;
  inodes: number;
}

/** Where and how a layer is applied to an active snapshot (see applyLayer). */
export interface ApplyTarget {
  dir: string;
  mode: ApplyMode;
  /** Lower layer directories, newest first (overlay mode). */
  parents: string[];
}

export interface SnapshotterOptions {
  /** Default "auto": overlay where it can be mounted, else copy. Fixed for a root once chosen. */
  backend?: "auto" | SnapshotterBackend;
}

export interface SnapshotOptions {
  labels?: Record<string, string>;
}

function checkKey(key: unknown, what = "key"): string {
  if (typeof key !== "string" || key.length === 0 || key.length > 4096 || key.includes("\0"))
    throw new TtrpcError(Code.InvalidArgument, `invalid snapshot ${what}: want 1 to 4096 characters, no NUL`);
  return key;
}

function checkLabels(labels: unknown): Record<string, string> {
  if (labels === undefined) return {};
  if (typeof labels !== "object" || labels === null)
    throw new TtrpcError(Code.InvalidArgument, "invalid labels");
  let total = 0;
  for (const [k, v] of Object.entries(labels)) {
    if (typeof v !== "string") throw new TtrpcError(Code.InvalidArgument, `label ${k}: not a string`);
    total += k.length + v.length;
  }
  if (total > 64 * 1024) throw new TtrpcError(Code.InvalidArgument, "labels larger than 64 KiB");
  return { ...(labels as Record<string, string>) };
}

async function fsyncDir(path: string): Promise<void> {
  const fh = await open(path, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Disk usage of a tree: allocated bytes and inodes (hardlinks counted once), not following symlinks. */
export async function diskUsage(dir: string): Promise<Usage> {
  const seen = new Set<number>();
  let size = 0;
  let inodes = 0;
  const walk = async (path: string): Promise<void> => {
    const st = await lstat(path);
    if (st.nlink > 1 && !st.isDirectory()) {
      if (seen.has(st.ino)) return;
      seen.add(st.ino);
    }
    inodes++;
    size += st.blocks * 512;
    if (st.isDirectory()) for (const name of await readdir(path)) await walk(join(path, name));
  };
  await walk(dir);
  return { size, inodes };
}

/** Whether an overlay with a whiteout and an opaque dir mounts and behaves here. */
export async function probeOverlay(scratch: string): Promise<boolean> {
  const dir = join(scratch, `probe-${randomBytes(4).toString("hex")}`);
  const p = (n: string) => join(dir, n);
  try {
    for (const n of ["l1/d", "l2", "u/d", "w", "m"]) await mkdir(p(n), { recursive: true });
    await mkdir(p("l1/gone"));
    const ok = async (cmd: string, args: string[]) =>
      (await execa(cmd, args, { reject: false, stdin: "ignore" })).exitCode === 0;
    if (!(await ok("mknod", [p("u/gone"), "c", "0", "0"]))) return false;
    if (!(await ok("setfattr", ["-n", "trusted.overlay.opaque", "-v", "y", p("u/d")]))) return false;
    const index = overlayHasIndex() ? ["index=off"] : [];
    try {
      await mountAll(
        [
          {
            type: "overlay",
            source: "overlay",
            options: [...index, `workdir=${p("w")}`, `upperdir=${p("u")}`, `lowerdir=${p("l2")}:${p("l1")}`],
          },
        ],
        p("m"),
      );
    } catch {
      return false;
    }
    try {
      const names = (await readdir(p("m"))).sort();
      return names.length === 1 && names[0] === "d";
    } finally {
      await unmountAll(p("m"));
    }
  } catch {
    return false;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export class OverlaySnapshotter {
  readonly root: string;
  readonly backend: SnapshotterBackend;
  readonly #md: SnapshotMetadata;
  readonly #snapshots: string;
  readonly #index: boolean;

  private constructor(root: string, backend: SnapshotterBackend, md: SnapshotMetadata) {
    this.root = root;
    this.backend = backend;
    this.#md = md;
    this.#snapshots = join(root, "snapshots");
    this.#index = overlayHasIndex();
  }

  /** Opens (creating if needed) the snapshotter at `root`, and removes what a crash left. */
  static async open(root: string, options: SnapshotterOptions = {}): Promise<OverlaySnapshotter> {
    await mkdir(join(root, "snapshots"), { recursive: true, mode: 0o700 });
    const md = new SnapshotMetadata(join(root, "metadata.db"));
    try {
      let backend = md.getMeta("backend") as SnapshotterBackend | undefined;
      const want = options.backend ?? "auto";
      if (backend === undefined) {
        backend = want === "auto" ? ((await probeOverlay(root)) ? "overlay" : "copy") : want;
        md.setMeta("backend", backend);
      } else if (want !== "auto" && want !== backend) {
        throw new TtrpcError(
          Code.FailedPrecondition,
          `snapshotter root ${root} holds ${backend} snapshots; it cannot be opened as ${want}`,
        );
      }
      const s = new OverlaySnapshotter(root, backend, md);
      await s.cleanup();
      return s;
    } catch (err) {
      md.close();
      throw err;
    }
  }

  close(): void {
    this.#md.close();
  }

  #dir(id: number): string {
    return join(this.#snapshots, String(id));
  }

  #fs(id: number): string {
    return join(this.#dir(id), "fs");
  }

  #row(key: string): SnapshotRow {
    checkKey(key);
    const row = this.#md.byKey(key);
    if (!row) throw new TtrpcError(Code.NotFound, `snapshot ${key}: not found`);
    return row;
  }

  #info(row: SnapshotRow): SnapshotInfo {
    const parent = row.parentId === null ? undefined : this.#md.byId(row.parentId)?.key;
    return {
      key: row.key,
      kind: row.kind,
      ...(parent === undefined ? {} : { parent }),
      labels: row.labels,
      created: new Date(row.created),
      updated: new Date(row.updated),
    };
  }

  /** An active (writable) snapshot on `parent` (a committed snapshot's key); its mounts. */
  prepare(key: string, parent?: string, opts: SnapshotOptions = {}): Promise<Mount[]> {
    return this.#create("active", key, parent, opts);
  }

  /** A read-only view of `parent`; its mounts. */
  view(key: string, parent?: string, opts: SnapshotOptions = {}): Promise<Mount[]> {
    return this.#create("view", key, parent, opts);
  }

  async #create(
    kind: SnapshotKind,
    key: string,
    parent: string | undefined,
    opts: SnapshotOptions,
  ): Promise<Mount[]> {
    checkKey(key);
    const labels = checkLabels(opts.labels);
    let parentRow: SnapshotRow | undefined;
    if (parent !== undefined && parent !== "") {
      checkKey(parent, "parent");
      parentRow = this.#md.byKey(parent);
      if (!parentRow) throw new TtrpcError(Code.NotFound, `parent snapshot ${parent}: not found`);
      if (parentRow.kind !== "committed")
        throw new TtrpcError(Code.InvalidArgument, `parent snapshot ${parent} is not committed`);
    }
    if (this.#md.byKey(key)) throw new TtrpcError(Code.AlreadyExists, `snapshot ${key}: already exists`);
    const temp = join(this.#snapshots, `new-${randomBytes(6).toString("hex")}`);
    try {
      await mkdir(temp, { mode: 0o700 });
      if (this.backend === "copy" && parentRow) {
        const r = await execa("cp", ["-a", "--reflink=auto", this.#fs(parentRow.id), join(temp, "fs")], {
          reject: false,
          stdin: "ignore",
        });
        if (r.exitCode !== 0)
          throw new TtrpcError(Code.Unknown, `copying snapshot ${parent}: ${String(r.stderr).trim()}`);
      } else {
        await mkdir(join(temp, "fs"), { mode: 0o755 });
      }
      if (this.backend === "overlay" && kind === "active") await mkdir(join(temp, "work"), { mode: 0o711 });
      const id = this.#md.transaction(() => {
        const newId = this.#md.insert(key, kind, parentRow?.id ?? null, labels);
        const target = this.#dir(newId);
        rmSync(target, { recursive: true, force: true }); // an orphan of a rolled-back insert
        renameSync(temp, target);
        return newId;
      });
      await fsyncDir(this.#snapshots);
      return this.#mounts(this.#md.byId(id)!);
    } catch (err) {
      await rm(temp, { recursive: true, force: true });
      throw err;
    }
  }

  /** The mounts of an active snapshot or a view (as containerd's overlay snapshotter gives them). */
  async mounts(key: string): Promise<Mount[]> {
    const row = this.#row(key);
    if (row.kind === "committed")
      throw new TtrpcError(Code.FailedPrecondition, `snapshot ${key} is committed: it has no mounts`);
    return this.#mounts(row);
  }

  #mounts(row: SnapshotRow): Mount[] {
    const ro = row.kind === "view";
    if (this.backend === "copy")
      return [{ type: "bind", source: this.#fs(row.id), options: [ro ? "ro" : "rw", "rbind"] }];
    const parents = this.#md.chain(row).slice(1);
    if (parents.length === 0)
      return [{ type: "bind", source: this.#fs(row.id), options: [ro ? "ro" : "rw", "rbind"] }];
    if (ro && parents.length === 1)
      return [{ type: "bind", source: this.#fs(parents[0]!.id), options: ["ro", "rbind"] }];
    const options = this.#index ? ["index=off"] : [];
    if (!ro) options.push(`workdir=${join(this.#dir(row.id), "work")}`, `upperdir=${this.#fs(row.id)}`);
    options.push(`lowerdir=${parents.map((p) => this.#fs(p.id)).join(":")}`);
    return [{ type: "overlay", source: "overlay", options }];
  }

  /**
   * The directory holding only what the active or committed snapshot `key` adds over its parent
   * (overlay whiteouts for removals), and that parent: the layer a diff of the two is. The copy
   * backend's directories hold whole trees: Unimplemented there; a view adds nothing of its own.
   */
  async layerDir(key: string): Promise<{ dir: string; parent: string | undefined }> {
    const row = this.#row(key);
    if (this.backend === "copy")
      throw new TtrpcError(
        Code.Unimplemented,
        "diffs are made on the overlay backend only (this root copies)",
      );
    if (row.kind === "view")
      throw new TtrpcError(Code.FailedPrecondition, `snapshot ${key} is a view: it adds no layer`);
    return { dir: this.#fs(row.id), parent: this.#md.chain(row)[1]?.key };
  }

  /** Where unpack applies a layer to the active snapshot `key`, and in which mode. */
  async applyTarget(key: string): Promise<ApplyTarget> {
    const row = this.#row(key);
    if (row.kind !== "active") throw new TtrpcError(Code.FailedPrecondition, `snapshot ${key} is not active`);
    const dir = this.#fs(row.id);
    if (this.backend === "copy") return { dir, mode: "flat", parents: [] };
    const parents = this.#md
      .chain(row)
      .slice(1)
      .map((p) => this.#fs(p.id));
    return parents.length === 0 ? { dir, mode: "flat", parents } : { dir, mode: "overlay", parents };
  }

  /** Makes the active snapshot `key` the committed snapshot `name` (AlreadyExists if taken). */
  async commit(name: string, key: string, opts: SnapshotOptions = {}): Promise<void> {
    checkKey(name, "name");
    const row = this.#row(key);
    if (row.kind !== "active")
      throw new TtrpcError(
        Code.FailedPrecondition,
        `snapshot ${key} is ${row.kind}: only an active one commits`,
      );
    if (this.#md.byKey(name)) throw new TtrpcError(Code.AlreadyExists, `snapshot ${name}: already exists`);
    const labels = opts.labels === undefined ? row.labels : checkLabels(opts.labels);
    const usage = await diskUsage(this.#fs(row.id));
    this.#md.transaction(() => {
      const again = this.#md.byId(row.id);
      if (again?.kind !== "active")
        throw new TtrpcError(Code.FailedPrecondition, `snapshot ${key} changed while committing`);
      this.#md.commit(row.id, name, labels, usage);
    });
    await rm(join(this.#dir(row.id), "work"), { recursive: true, force: true });
  }

  /** Removes a snapshot (FailedPrecondition while it has children). */
  async remove(key: string): Promise<void> {
    const row = this.#row(key);
    this.#md.transaction(() => {
      if (this.#md.hasChildren(row.id))
        throw new TtrpcError(Code.FailedPrecondition, `snapshot ${key} has children: remove them first`);
      this.#md.delete(row.id);
    });
    await this.#removeDir(this.#dir(row.id));
  }

  async #removeDir(dir: string): Promise<void> {
    const gone = join(this.#snapshots, `rm-${randomBytes(6).toString("hex")}`);
    try {
      renameSync(dir, gone);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    await rm(gone, { recursive: true, force: true });
  }

  async stat(key: string): Promise<SnapshotInfo> {
    return this.#info(this.#row(key));
  }

  /** Replaces a snapshot's labels. */
  async setLabels(key: string, labels: Record<string, string>): Promise<SnapshotInfo> {
    const row = this.#row(key);
    this.#md.updateLabels(row.id, checkLabels(labels));
    return this.#info(this.#row(key));
  }

  async list(): Promise<SnapshotInfo[]> {
    return this.#md.all().map((r) => this.#info(r));
  }

  /** Disk usage: stored at commit for committed snapshots, measured now for the others. */
  async usage(key: string): Promise<Usage> {
    const row = this.#row(key);
    if (row.kind === "committed" && row.size !== null && row.inodes !== null)
      return { size: row.size, inodes: row.inodes };
    return diskUsage(this.#fs(row.id));
  }

  /** Removes directories no row owns (what a crash left). Returns how many. */
  async cleanup(): Promise<number> {
    const ids = this.#md.ids();
    let removed = 0;
    for (const name of await readdir(this.#snapshots)) {
      if (/^[0-9]+$/.test(name) && ids.has(Number(name))) continue;
      await rm(join(this.#snapshots, name), { recursive: true, force: true });
      removed++;
    }
    return removed;
  }
}
