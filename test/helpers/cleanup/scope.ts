// What belongs to one test, and the path rule every finder uses.

/** What belongs to one test: the things a sweep may kill or delete and a leak check looks for. */
export interface LeakScope {
  /** The test's temp root, e.g. /tmp/tsr-AbC123 (absolute, no trailing slash). */
  readonly tempRoot: string;
  /** containerd namespaces the test used; each one is also the parent cgroup of its containers. */
  readonly namespaces: readonly string[];
  /**
   * Strings whose presence in a process's command line makes it ours (e.g. containerd's grpc
   * address, matched in a shim's `-address` argument). The temp root is always one.
   */
  readonly needles?: readonly string[];
  /** Extra runc roots to sweep besides /run/containerd/runc/<namespace> and those inside the temp root. */
  readonly runcRoots?: readonly string[];
  /** Socket paths known to belong to the test (shim sockets outside the temp root). */
  readonly sockets?: Iterable<string>;
}

/** `p` is `root` or below it. */
export function isUnder(p: string, root: string): boolean {
  return p === root || p.startsWith(`${root}/`);
}
