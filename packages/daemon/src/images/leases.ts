// In-memory leases: what an operation in progress (Pull, Import, Config's view, an unpack) is
// making or about to use, so that a GC running meanwhile keeps it. A lease holds blob digests and
// snapshot keys of one namespace, and its start time: the GC also keeps every blob and snapshot
// that appeared after the oldest live lease began (an operation cannot name what it has not
// discovered yet). Leases die with the process; what a crash leaves is the durable pull lease's
// (image-store.ts) or garbage.

import { randomBytes } from "node:crypto";

export class Lease {
  readonly id = randomBytes(8).toString("hex");
  readonly startedAt = Date.now();
  readonly blobs = new Set<string>();
  readonly snapshots = new Set<string>();
  /** Content ingest refs (as the content store names them) whose partial bytes are kept. */
  readonly ingests = new Set<string>();
  #released = false;

  constructor(
    readonly namespace: string,
    private readonly onRelease: (lease: Lease) => void,
  ) {}

  addBlobs(...digests: string[]): void {
    for (const d of digests) this.blobs.add(d);
  }

  addSnapshots(...keys: string[]): void {
    for (const k of keys) this.snapshots.add(k);
  }

  addIngests(...refs: string[]): void {
    for (const r of refs) this.ingests.add(r);
  }

  get released(): boolean {
    return this.#released;
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.onRelease(this);
  }
}

export class LeaseManager {
  readonly #live = new Set<Lease>();

  acquire(namespace: string): Lease {
    const lease = new Lease(namespace, (l) => this.#live.delete(l));
    this.#live.add(lease);
    return lease;
  }

  /** When the oldest live lease began (Infinity when none is live). */
  floor(): number {
    let min = Number.POSITIVE_INFINITY;
    for (const l of this.#live) min = Math.min(min, l.startedAt);
    return min;
  }

  holdsBlob(digest: string): boolean {
    for (const l of this.#live) if (l.blobs.has(digest)) return true;
    return false;
  }

  holdsSnapshot(namespace: string, key: string): boolean {
    for (const l of this.#live) if (l.namespace === namespace && l.snapshots.has(key)) return true;
    return false;
  }

  holdsIngest(ref: string): boolean {
    for (const l of this.#live) if (l.ingests.has(ref)) return true;
    return false;
  }

  /** Whether an operation of `namespace` is in progress. */
  busy(namespace: string): boolean {
    for (const l of this.#live) if (l.namespace === namespace) return true;
    return false;
  }

  get size(): number {
    return this.#live.size;
  }
}
