// A container's network namespace, kept alive by a bind mount under <state>/.netns/<ns>/<id>
// for as long as it has networks. Two reasons: a DEL after the container died still finds the
// namespace (Debian's bridge plugin 1.1.1 removes its masquerade rules only when it can enter the
// namespace: an empty CNI_NETNS would leak them), and DEL never names /proc/<pid>/ns/net, whose
// pid may by then belong to another process in another namespace.
import { mkdir, rm, rmdir, statfs, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { execa } from "execa";

/** statfs f_type of nsfs: what a pinned file reports. */
const NSFS_MAGIC = 0x6e736673;

export function pinPath(pinDir: string, namespace: string, id: string): string {
  return join(pinDir, namespace, id);
}

export async function isPinned(path: string): Promise<boolean> {
  try {
    return (await statfs(path)).type === NSFS_MAGIC;
  } catch {
    return false;
  }
}

/** Bind-mounts the netns of `pid` on `path` (made first). */
export async function pinNetns(pid: number, path: string): Promise<void> {
  // Another container's unpin may remove the directory between our mkdir and write: again.
  for (let attempt = 0; ; attempt++) {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    try {
      await writeFile(path, "", { mode: 0o600 });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT" || attempt >= 5) throw err;
    }
  }
  const r = await execa("mount", ["--bind", `/proc/${pid}/ns/net`, path], { reject: false, timeout: 10_000 });
  if (r.exitCode !== 0)
    throw new TtrpcError(
      Code.Internal,
      `pinning the network namespace of pid ${pid}: ${String(r.stderr).trim()}`,
    );
}

/** Unmounts (when mounted) and removes the pin; a missing pin is fine. */
export async function unpinNetns(path: string): Promise<void> {
  if (await isPinned(path)) {
    const r = await execa("umount", [path], { reject: false, timeout: 10_000 });
    if (r.exitCode !== 0 && (await isPinned(path)))
      throw new TtrpcError(
        Code.Internal,
        `unmounting the network namespace pin ${path}: ${String(r.stderr).trim()}`,
      );
  }
  await rm(path, { force: true });
  // The namespace's directory goes with its last pin (another create may race it: ignored).
  await rmdir(dirname(path)).catch(() => {});
}
