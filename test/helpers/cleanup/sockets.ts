// Unix sockets of a scope: bound ones under the temp root, and the Go shim's socket naming.

import { createHash } from "node:crypto";
import * as path from "node:path";
import { isUnder, type LeakScope } from "./scope.js";
import { readText } from "./sync-fs.js";

/** Where containerd 1.6's shims put their sockets. */
export const SHIM_SOCKET_DIR = "/run/containerd/s";

/** The socket path containerd-shim-runc-v2 (1.6) uses: sha256(join(address, namespace, id)). */
export function goShimSocketPath(grpcAddress: string, namespace: string, id: string): string {
  const digest = createHash("sha256")
    .update(path.join(grpcAddress, namespace, id))
    .digest("hex");
  return path.join(SHIM_SOCKET_DIR, digest);
}

/** Paths of bound unix sockets (from /proc/net/unix) at or under the temp root or in `sockets`. */
export function boundSockets(scope: LeakScope): string[] {
  const known = new Set(scope.sockets ?? []);
  const out = new Set<string>();
  for (const line of (readText("/proc/net/unix") ?? "").split("\n").slice(1)) {
    const p = line.trim().split(/\s+/)[7];
    if (p && (isUnder(p, scope.tempRoot) || known.has(p))) out.add(p);
  }
  return [...out];
}
