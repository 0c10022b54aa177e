// The files of a runtime-v2 bundle that a shim and its caller both read or write, named once.
// containerd lays out `<state>/<namespace>/<id>` with config.json, rootfs/, the `log` fifo and
// (1.7+) `shim-binary-path`; the shim adds `address` and `shim.pid`, runc's init pid, and its own
// private files. Writers replace files atomically (temp + rename): a daemon that crashes or a
// reader racing a writer sees the old content or the new one, never a torn address.
import { randomBytes } from "node:crypto";
import { readFile, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const BundleFile = {
  /** The OCI runtime spec. */
  config: "config.json",
  /** Where the container's root filesystem is mounted (or lies, for a prepared directory). */
  rootfs: "rootfs",
  /** The shim's ttrpc address (`unix:///…`); the caller reconnects through it after a restart. */
  address: "address",
  /** The long-lived shim server's pid. */
  shimPid: "shim.pid",
  /** The container's init pid, as runc writes it with --pid-file. */
  initPid: "init.pid",
  /** A fifo the caller reads: the shim's logs, one JSON object per line. */
  log: "log",
  /** The shim binary that started this bundle (containerd 1.7 writes it; so do we). */
  shimBinaryPath: "shim-binary-path",
  /** The runtime options `start` received on stdin (a serialized Any), kept for the server. */
  shimOptions: "shim-options.pb",
  /** The runc binary and root a Create chose, so that `delete` can clean up with the same. */
  runcOptions: "tsrunc-options.json",
  /** Left by a clean Task.Delete: the DeleteResponse the `delete` verb prints without redoing it. */
  deleted: "tsrunc-deleted.pb",
} as const;

export type BundleFileName = (typeof BundleFile)[keyof typeof BundleFile];

export function bundlePath(bundle: string, file: BundleFileName): string {
  return join(bundle, file);
}

/** Replaces `path` with `data` so that readers never see a partial file. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  const tmp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    await writeFile(tmp, data, { mode });
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}

async function readText(bundle: string, file: BundleFileName): Promise<string | undefined> {
  try {
    return await readFile(join(bundle, file), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** The address a shim recorded, trimmed; undefined when the file is missing or empty. */
export async function readAddress(bundle: string): Promise<string | undefined> {
  const text = (await readText(bundle, BundleFile.address))?.trim();
  return text ? text : undefined;
}

export function writeAddress(bundle: string, address: string): Promise<void> {
  return writeFileAtomic(join(bundle, BundleFile.address), address);
}

/** A pid file's value; undefined when missing, empty or not a positive integer. */
export async function readPidFile(
  bundle: string,
  file: typeof BundleFile.shimPid | typeof BundleFile.initPid,
): Promise<number | undefined> {
  const text = (await readText(bundle, file))?.trim();
  if (!text || !/^[0-9]+$/.test(text)) return undefined;
  const pid = Number.parseInt(text, 10);
  return pid > 0 ? pid : undefined;
}

export function writePidFile(
  bundle: string,
  file: typeof BundleFile.shimPid | typeof BundleFile.initPid,
  pid: number,
): Promise<void> {
  return writeFileAtomic(join(bundle, file), String(pid));
}

export async function readShimBinaryPath(bundle: string): Promise<string | undefined> {
  const text = (await readText(bundle, BundleFile.shimBinaryPath))?.trim();
  return text ? text : undefined;
}

export function writeShimBinaryPath(bundle: string, binary: string): Promise<void> {
  return writeFileAtomic(join(bundle, BundleFile.shimBinaryPath), binary);
}
