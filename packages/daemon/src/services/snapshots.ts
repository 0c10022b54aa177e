// containerd.services.snapshots.v1.Snapshots, transport-free, on the namespace's overlay
// snapshotter (images/snapshotters.ts). The snapshotter name must be "overlayfs" or empty.
// Remove refuses a snapshot a container with a live task names as its snapshot key: its overlay
// is mounted under that task's bundle.

import type { SnapshotInfo } from "@tsrunc/images";
import type { snapshotsapi } from "@tsrunc/protocol/daemon";
import { timestampFromDate, type types } from "@tsrunc/protocol/shim";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { checkSnapshotter } from "../images/snapshotters.js";
import type { ImageSystem } from "../images/system.js";
import { maskLabels } from "../label-rules.js";
import { type FieldGetter, mapField, parseFilters } from "../store/index.js";
import type { LeaseLookup } from "./content.js";
import type { LeasedScope } from "./leases.js";
import type { CallScope } from "./tasks.js";

type Mount = { type: string; source: string; target?: string; options: string[] };

const kinds: Record<SnapshotInfo["kind"], snapshotsapi.Kind> = {
  view: 1 as snapshotsapi.Kind,
  active: 2 as snapshotsapi.Kind,
  committed: 3 as snapshotsapi.Kind,
};
const kindNames = ["unknown", "view", "active", "committed"];

export function toMounts(mounts: readonly Mount[]): types.Mount[] {
  return mounts.map((m) => ({
    type: m.type,
    source: m.source,
    target: m.target ?? "",
    options: [...m.options],
  }));
}

function toInfo(i: SnapshotInfo): snapshotsapi.Info {
  return {
    name: i.key,
    parent: i.parent ?? "",
    kind: kinds[i.kind],
    createdAt: timestampFromDate(i.created),
    updatedAt: timestampFromDate(i.updated),
    labels: { ...i.labels },
  };
}

/** containerd's snapshot filter fields: name, parent, kind, labels.<key>. */
function snapshotFields(i: snapshotsapi.Info): FieldGetter {
  return (path) => {
    const present = (v: string) => (v ? v : undefined);
    switch (path[0]) {
      case "name":
        return present(i.name);
      case "parent":
        return present(i.parent);
      case "kind":
        return kindNames[i.kind];
      case "labels":
        return mapField(path.slice(1), i.labels);
      default:
        return undefined;
    }
  };
}

function key(k: string, what = "key"): string {
  if (!k) throw new TtrpcError(Code.InvalidArgument, `snapshot ${what} must not be empty`);
  return k;
}

export class SnapshotsApi {
  constructor(
    private readonly sys: ImageSystem,
    /** Finds the lease a call names: what it prepares, views or commits is held by it. */
    private readonly leases?: LeaseLookup,
  ) {}

  /** The lease a call names (NotFound when it does not exist), checked before anything is made. */
  #lease(s: LeasedScope) {
    if (!s.lease || !this.leases) return undefined;
    const lease = this.leases(s.namespace, s.lease);
    if (!lease || lease.released)
      throw new TtrpcError(Code.NotFound, `lease ${JSON.stringify(s.lease)} does not exist`);
    return lease;
  }

  #locked<T>(s: CallScope, k: string, fn: () => Promise<T>): Promise<T> {
    return this.sys.snapshotLocks.run(`${s.namespace}/${k}`, fn);
  }

  #sn(s: CallScope, name: string) {
    checkSnapshotter(name);
    return this.sys.snapshotters.get(s.namespace);
  }

  async prepare(
    s: LeasedScope,
    req: snapshotsapi.PrepareSnapshotRequest,
  ): Promise<snapshotsapi.PrepareSnapshotResponse> {
    const sn = await this.#sn(s, req.snapshotter);
    this.#lease(s)?.addSnapshots(key(req.key));
    const mounts = await sn.prepare(key(req.key), req.parent || undefined, { labels: req.labels });
    return { mounts: toMounts(mounts) };
  }

  async view(
    s: LeasedScope,
    req: snapshotsapi.ViewSnapshotRequest,
  ): Promise<snapshotsapi.ViewSnapshotResponse> {
    const sn = await this.#sn(s, req.snapshotter);
    this.#lease(s)?.addSnapshots(key(req.key));
    const mounts = await sn.view(key(req.key), req.parent || undefined, { labels: req.labels });
    return { mounts: toMounts(mounts) };
  }

  async mounts(s: CallScope, req: snapshotsapi.MountsRequest): Promise<snapshotsapi.MountsResponse> {
    const sn = await this.#sn(s, req.snapshotter);
    return { mounts: toMounts(await sn.mounts(key(req.key))) };
  }

  async commit(s: LeasedScope, req: snapshotsapi.CommitSnapshotRequest): Promise<void> {
    const sn = await this.#sn(s, req.snapshotter);
    const labels = Object.keys(req.labels).length ? req.labels : undefined;
    const name = key(req.name, "name");
    const k = key(req.key);
    this.#lease(s)?.addSnapshots(name);
    await this.#locked(s, k, () => sn.commit(name, k, labels ? { labels } : {}));
  }

  async remove(s: CallScope, req: snapshotsapi.RemoveSnapshotRequest): Promise<void> {
    const sn = await this.#sn(s, req.snapshotter);
    const k = key(req.key);
    for (const c of this.sys.metadata.listContainers(s.namespace)) {
      if (c.snapshotKey === k && this.sys.metadata.findTask(s.namespace, c.id))
        throw new TtrpcError(
          Code.FailedPrecondition,
          `snapshot ${JSON.stringify(k)} is the rootfs of container ${JSON.stringify(c.id)}, which has a task: delete the task first`,
        );
    }
    await this.#locked(s, k, () => sn.remove(k));
  }

  async stat(
    s: CallScope,
    req: snapshotsapi.StatSnapshotRequest,
  ): Promise<snapshotsapi.StatSnapshotResponse> {
    const sn = await this.#sn(s, req.snapshotter);
    return { info: toInfo(await sn.stat(key(req.key))) };
  }

  /** Only labels are mutable: "labels", "labels.<key>"; all of them when the mask is empty. */
  async update(
    s: CallScope,
    req: snapshotsapi.UpdateSnapshotRequest,
  ): Promise<snapshotsapi.UpdateSnapshotResponse> {
    const sn = await this.#sn(s, req.snapshotter);
    const k = key(req.info?.name ?? "", "name");
    const cur = await sn.stat(k);
    const labels = maskLabels(
      cur.labels,
      req.info?.labels ?? {},
      req.updateMask?.paths ?? [],
      `snapshot ${JSON.stringify(k)}`,
    );
    return { info: toInfo(await sn.setLabels(k, labels)) };
  }

  async *list(
    s: CallScope,
    req: snapshotsapi.ListSnapshotsRequest,
  ): AsyncGenerator<snapshotsapi.ListSnapshotsResponse> {
    const sn = await this.#sn(s, req.snapshotter);
    const match = parseFilters(req.filters);
    const infos = (await sn.list()).map(toInfo).filter((i) => match(snapshotFields(i)));
    // Batches keep each message below ttrpc's 4 MiB: a snapshot's labels may reach 64 KiB and
    // its key 4 KiB, so 32 of them stay under 2.2 MiB.
    for (let i = 0; i < infos.length; i += 32) yield { info: infos.slice(i, i + 32) };
  }

  async usage(s: CallScope, req: snapshotsapi.UsageRequest): Promise<snapshotsapi.UsageResponse> {
    const sn = await this.#sn(s, req.snapshotter);
    const u = await sn.usage(key(req.key));
    return { size: u.size, inodes: u.inodes };
  }

  async cleanup(s: CallScope, req: snapshotsapi.CleanupRequest): Promise<void> {
    const sn = await this.#sn(s, req.snapshotter);
    await sn.cleanup();
  }
}
