// A task's bundle, laid out as containerd does: `<state>/<namespace>/<id>` with config.json, a
// rootfs directory (the shim mounts the snapshot there), and the `log` fifo the shim writes its
// JSON log lines to. The daemon keeps the fifo's read end open and relays each line into its
// own log with the container's namespace and id.
import { constants, openSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { Socket } from "node:net";
import { join } from "node:path";
import { BundleFile } from "@tsrunc/shim-contract/bundle-files";
import { execa } from "execa";
import type { Logger } from "pino";

export function bundleDir(state: string, namespace: string, id: string): string {
  return join(state, namespace, id);
}

/** Makes the bundle; the spec is written as given (it came from the container record). */
export async function createBundle(dir: string, specJson: Uint8Array, withRootfs: boolean): Promise<void> {
  await mkdir(join(dir, ".."), { recursive: true, mode: 0o711 });
  // Not recursive: an existing directory means a bundle we do not know about; refuse it.
  await mkdir(dir, { mode: 0o711 });
  await writeFile(join(dir, BundleFile.config), specJson, { mode: 0o644 });
  if (withRootfs) await mkdir(join(dir, BundleFile.rootfs), { mode: 0o711 });
  await execa("mkfifo", ["-m", "0600", join(dir, BundleFile.log)]);
}

/**
 * Removes a bundle after its shim is gone. A rootfs still mounted (a shim killed before it could
 * unmount) is unmounted first, lazily if busy; rm never crosses into a mounted filesystem. The
 * mount table is read rather than `umount` tried blindly: most bundles have nothing mounted, and
 * a process spawn costs more than the read.
 */
export async function removeBundle(dir: string): Promise<void> {
  const rootfs = join(dir, BundleFile.rootfs);
  for (let i = 0; i < 8 && (await mountedAt(rootfs)); i++) {
    const r = await execa("umount", [rootfs], { reject: false });
    if (r.exitCode !== 0) await execa("umount", ["-l", rootfs], { reject: false });
  }
  if (await mountedAt(rootfs)) throw new Error(`${rootfs} is still mounted`);
  await rm(dir, { recursive: true, force: true });
}

/** True when something is mounted on `path` (mountinfo's 5th field, octal escapes decoded). */
async function mountedAt(path: string): Promise<boolean> {
  const table = await readFile("/proc/self/mountinfo", "utf8");
  for (const line of table.split("\n")) {
    const mountPoint = line.split(" ")[4];
    if (
      mountPoint &&
      mountPoint.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))) ===
        path
    )
      return true;
  }
  return false;
}

export interface LogRelay {
  close(): void;
}

/** Reads the bundle's log fifo and writes each JSON line into `log` (non-blocking, never throws). */
export function relayShimLog(dir: string, log: Logger): LogRelay {
  let socket: Socket | undefined;
  try {
    // O_RDWR would keep the fifo open forever; O_RDONLY|O_NONBLOCK opens without a writer and
    // reads EOF only when every writer has gone, after which the relay ends by itself.
    const fd = openSync(join(dir, BundleFile.log), constants.O_RDONLY | constants.O_NONBLOCK);
    socket = new Socket({ fd, readable: true, writable: false });
  } catch (err) {
    log.warn({ err: (err as Error).message }, "cannot open the shim's log fifo");
    return { close() {} };
  }
  let pending = "";
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => {
    pending += chunk;
    if (pending.length > 1 << 20) pending = pending.slice(-(1 << 16));
    let nl = pending.indexOf("\n");
    while (nl >= 0) {
      const line = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      if (line) forward(log, line);
      nl = pending.indexOf("\n");
    }
  });
  socket.on("error", () => {});
  return {
    close() {
      socket?.destroy();
    },
  };
}

function forward(log: Logger, line: string): void {
  let entry: Record<string, unknown> | undefined;
  try {
    const v = JSON.parse(line) as unknown;
    if (v && typeof v === "object" && !Array.isArray(v)) entry = v as Record<string, unknown>;
  } catch {
    entry = undefined;
  }
  if (!entry) {
    log.info({ shim: line.slice(0, 4096) }, "shim log");
    return;
  }
  const { msg, level, time: _t, pid: _p, hostname: _h, ...rest } = entry;
  const text = typeof msg === "string" ? msg : "shim log";
  const lvl = typeof level === "number" ? level : typeof level === "string" ? level : 30;
  const fields = { shim: rest };
  if (lvl === "error" || (typeof lvl === "number" && lvl >= 50)) log.error(fields, text);
  else if (lvl === "warn" || lvl === "warning" || (typeof lvl === "number" && lvl >= 40))
    log.warn(fields, text);
  else if (lvl === "debug" || lvl === "trace" || (typeof lvl === "number" && lvl < 30))
    log.debug(fields, text);
  else log.info(fields, text);
}
