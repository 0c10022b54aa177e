// Mounting the rootfs that containerd describes in CreateTaskRequest.rootfs onto bundle/rootfs,
// and taking it down again. Every field is validated first: these strings become mount(8)
// arguments, and a hostile peer must not be able to mount over an arbitrary path.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { BundleFile } from "@tsrunc/shim-contract/bundle-files";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { runProcess } from "./run-process.js";

export interface MountSpec {
  type: string;
  source: string;
  target?: string;
  options: string[];
}

const fsType = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/**
 * At most this many rootfs mounts per container: containerd's snapshotters hand over one or two,
 * each one costs a mount(8) process, and unmountRootfs takes down at most this many layers.
 */
export const MAX_ROOTFS_MOUNTS = 16;

function check(m: MountSpec): void {
  if (!fsType.test(m.type))
    throw new TtrpcError(Code.InvalidArgument, `invalid mount type ${JSON.stringify(m.type)}`);
  for (const s of [m.source, ...m.options]) {
    if (s.includes("\0") || s.length > 4096)
      throw new TtrpcError(Code.InvalidArgument, "invalid mount source or option");
  }
  if (m.target) throw new TtrpcError(Code.InvalidArgument, "rootfs mounts must not name a target");
}

export function rootfsPath(bundle: string): string {
  return join(bundle, BundleFile.rootfs);
}

/** Mounts each mount in order on bundle/rootfs; on failure, unmounts what it mounted. */
export async function mountRootfs(bundle: string, mounts: readonly MountSpec[]): Promise<void> {
  if (mounts.length === 0) return;
  if (mounts.length > MAX_ROOTFS_MOUNTS)
    throw new TtrpcError(
      Code.InvalidArgument,
      `too many rootfs mounts (${mounts.length}, at most ${MAX_ROOTFS_MOUNTS})`,
    );
  for (const m of mounts) check(m);
  const target = rootfsPath(bundle);
  await mkdir(target, { recursive: true, mode: 0o711 });
  let done = 0;
  try {
    for (const m of mounts) {
      const args = ["-t", m.type];
      // "-o" with commas inside values is fine for mount(8); an empty list must be left out.
      if (m.options.length) args.push("-o", m.options.join(","));
      const r = await runProcess("mount", [...args, "--", m.source, target]);
      if (r.failed) throw Object.assign(new Error(r.message), { stderr: r.stderr });
      done++;
    }
  } catch (err) {
    for (let i = 0; i < done; i++) await unmountRootfs(bundle);
    const msg = (err as { stderr?: string }).stderr || (err as Error).message;
    throw new TtrpcError(Code.Unknown, `mount rootfs: ${msg.trim()}`);
  }
}

/** Unmounts everything stacked on bundle/rootfs (lazily, like MNT_DETACH); a no-op when nothing is. */
export async function unmountRootfs(bundle: string): Promise<void> {
  const target = rootfsPath(bundle);
  for (let i = 0; i < MAX_ROOTFS_MOUNTS; i++) {
    const r = await runProcess("umount", ["-l", "--", target], { stdout: "ignore", stderr: "ignore" });
    if (r.exitCode !== 0) return;
  }
}
