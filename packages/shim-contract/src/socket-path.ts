// Where a shim's ttrpc socket lives. The path must fit sun_path (108 bytes including the NUL),
// so it is a short directory plus a sha256 of (containerd address, namespace, id) — the same
// inputs that make a shim unique. Never an abstract socket (CVE-2020-15257).
import { createHash } from "node:crypto";
import { unlinkSync } from "node:fs";
import { unlink } from "node:fs/promises";
import { join } from "node:path";
import { MAX_SOCKET_PATH_BYTES } from "@tsrunc/ttrpc/unix";

export const defaultSocketDir = "/run/tsrunc/s";

export function socketDir(): string {
  return process.env.TSRUNC_SOCKET_DIR || defaultSocketDir;
}

export function socketPath(address: string, namespace: string, groupId: string, dir = socketDir()): string {
  const digest = createHash("sha256").update(`${address}\0${namespace}\0${groupId}`).digest("hex");
  const path = join(dir, digest);
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    // Fall back to a shorter digest rather than failing: 32 hex chars is still collision-safe here.
    const short = join(dir, digest.slice(0, 32));
    if (Buffer.byteLength(short) > MAX_SOCKET_PATH_BYTES)
      throw new Error(`socket directory ${dir} is too long`);
    return short;
  }
  return path;
}

export function socketAddress(path: string): string {
  return `unix://${path}`;
}

/**
 * Removes a shim's socket file (a server that exits, or `delete` after a dead one). Only the
 * group's own socket: a pod's shared socket belongs to its sandbox's shim. Missing is fine.
 */
export async function removeShimSocket(address: string, namespace: string, groupId: string): Promise<void> {
  await unlink(socketPath(address, namespace, groupId)).catch(() => {});
}

/** removeShimSocket for exit handlers, where nothing asynchronous runs any more. */
export function removeShimSocketSync(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
