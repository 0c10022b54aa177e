// containerd.services.snapshots.v1.Snapshots through tsruncd. A container made from an image
// gets an active snapshot keyed by its id on the image's top chain id (ctr's WithNewSnapshot);
// the snapshot's mounts go to the shim in Tasks.Create as the rootfs.

import { type MessageInit, SnapshotsService, type snapshotsapi, type types } from "@tsrunc/protocol";
import { type Client, type ClientStub, Code, isCode } from "@tsrunc/ttrpc";
import type { CallOpts, OptsFn } from "./client.js";
import { DEFAULT_SNAPSHOTTER } from "./images.js";

export type SnapshotInfo = snapshotsapi.Info;
export type Mount = types.Mount;
export { DEFAULT_SNAPSHOTTER };

export interface PrepareInit {
  key: string;
  /** The committed snapshot to build on (an image's top chain id); "" for an empty one. */
  parent?: string;
  labels?: Record<string, string>;
  snapshotter?: string;
}

type SnapOpts = CallOpts & { snapshotter?: string };

/** Prepare's and View's request (the same fields: a key on a parent, with labels). */
const prepareRequest = (req: PrepareInit) => ({
  snapshotter: req.snapshotter ?? DEFAULT_SNAPSHOTTER,
  key: req.key,
  parent: req.parent ?? "",
  labels: req.labels ?? {},
});

/** The request of the calls that name one snapshot: Mounts, Remove, Stat, Usage. */
const keyRequest = (key: string, o: SnapOpts | undefined) => ({
  snapshotter: o?.snapshotter ?? DEFAULT_SNAPSHOTTER,
  key,
});

export class SnapshotsApi {
  readonly #stub: ClientStub<typeof SnapshotsService>;
  readonly #opts: OptsFn;

  /** @internal */
  constructor(client: Client, opts: OptsFn) {
    this.#stub = client.service(SnapshotsService);
    this.#opts = opts;
  }

  /** An active (writable) snapshot on `parent`; resolves to its mounts. */
  async prepare(req: PrepareInit, o?: CallOpts): Promise<Mount[]> {
    return (await this.#stub.prepare(prepareRequest(req), this.#opts(o))).mounts;
  }

  /** A read-only view on `parent`; resolves to its mounts. */
  async view(req: PrepareInit, o?: CallOpts): Promise<Mount[]> {
    return (await this.#stub.view(prepareRequest(req), this.#opts(o))).mounts;
  }

  async mounts(key: string, o?: SnapOpts): Promise<Mount[]> {
    return (await this.#stub.mounts(keyRequest(key, o), this.#opts(o))).mounts;
  }

  async remove(key: string, o?: SnapOpts): Promise<void> {
    await this.#stub.remove(keyRequest(key, o), this.#opts(o));
  }

  /** Removes a snapshot, treating one already gone as removed (ctr's WithSnapshotCleanup). */
  async removeIfExists(key: string, o?: SnapOpts): Promise<boolean> {
    try {
      await this.remove(key, o);
      return true;
    } catch (err) {
      if (isCode(err, Code.NotFound)) return false;
      throw err;
    }
  }

  async stat(key: string, o?: SnapOpts): Promise<SnapshotInfo> {
    return (await this.#stub.stat(keyRequest(key, o), this.#opts(o))).info;
  }

  /** Every snapshot (List is a server stream of batches), or those matching containerd filters. */
  async list(filters: string[] = [], o?: SnapOpts): Promise<SnapshotInfo[]> {
    const out: SnapshotInfo[] = [];
    const req: MessageInit<snapshotsapi.ListSnapshotsRequest> = {
      snapshotter: o?.snapshotter ?? DEFAULT_SNAPSHOTTER,
      filters,
    };
    for await (const batch of this.#stub.list(req, this.#opts(o))) out.push(...batch.info);
    return out;
  }

  async usage(key: string, o?: SnapOpts): Promise<{ size: number; inodes: number }> {
    const res = await this.#stub.usage(keyRequest(key, o), this.#opts(o));
    return { size: res.size, inodes: res.inodes };
  }
}
