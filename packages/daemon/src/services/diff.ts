// containerd.services.diff.v1.Diff, transport-free. Apply is how containerd 1.6's client unpacks
// (client/image.go Unpack → rootfs.ApplyLayerWithOpts): Snapshots.Prepare("extract-… <chain id>",
// parent) → Diff.Apply(layer, the mounts Prepare returned) → Snapshots.Commit(chain id, key).
//
// The daemon never mounts or opens a path a client names (a client may be a non-root --group
// member): Apply accepts only mounts that are exactly those of one of the namespace's active
// snapshots, and applies the layer into that snapshot's own directory, as our unpack does
// (overlay whiteouts in the upper dir above its parents; flat for a first layer or the copy
// backend). Anything else is InvalidArgument. The answer is the uncompressed layer: its digest
// is the layer's DiffID, which the client checks against the image config's rootfs.diff_ids.
// Diff (`ctr snapshots diff`): both mounts must be those of the namespace's snapshots (a view or an
// active one each), the right one exactly one layer above the left one (its own directory is the
// layer: overlay backend only, Unimplemented on the copy backend); the layer is written to the
// content store, gzip'd or not, labelled with its DiffID (containerd.io/uncompressed) and the
// request's labels, and held by the call's lease.

import { createHash } from "node:crypto";
import { createGzip } from "node:zlib";
import {
  applyLayer,
  compressionOfMediaType,
  digestHex,
  type SnapshotInfo,
  writeOverlayLayer,
} from "@tsrunc/images";
import type { diffapi } from "@tsrunc/protocol/daemon";
import type { types } from "@tsrunc/protocol/shim";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { checkContentLabels } from "../images/content-meta.js";
import type { ImageSystem } from "../images/system.js";
import type { LeaseLookup } from "./content.js";
import type { LeasedScope } from "./leases.js";
import type { CallScope } from "./tasks.js";

const gzipLayerType = "application/vnd.oci.image.layer.v1.tar+gzip";
const uncompressedLabel = "containerd.io/uncompressed";

/** What Apply answers (containerd's ocispec.MediaTypeImageLayer). */
export const uncompressedLayerType = "application/vnd.oci.image.layer.v1.tar";

const sameMount = (a: types.Mount, b: { type: string; source: string; options: readonly string[] }) =>
  a.type === b.type &&
  a.source === b.source &&
  a.options.length === b.options.length &&
  a.options.every((o, i) => o === b.options[i]);

export class DiffApi {
  constructor(
    private readonly sys: ImageSystem,
    private readonly leases?: LeaseLookup,
  ) {}

  async apply(s: CallScope, req: diffapi.ApplyRequest): Promise<diffapi.ApplyResponse> {
    const desc = req.diff;
    if (!desc?.digest) throw new TtrpcError(Code.InvalidArgument, "diff descriptor must name a digest");
    try {
      digestHex(desc.digest);
    } catch {
      throw new TtrpcError(
        Code.InvalidArgument,
        `diff digest ${JSON.stringify(desc.digest.slice(0, 100))} failed validation`,
      );
    }
    const compression = compressionOfMediaType(desc.mediaType);
    if (compression === undefined)
      throw new TtrpcError(
        Code.Unimplemented,
        `unsupported diff media type ${JSON.stringify(desc.mediaType)} (tar, tar+gzip, tar+zstd and docker's layer types are)`,
      );
    if (Object.keys(req.payloads).length > 0)
      throw new TtrpcError(Code.Unimplemented, "stream processor payloads are not supported");
    const info = await this.sys.content.info(desc.digest);
    if (!info) throw new TtrpcError(Code.NotFound, `content digest ${desc.digest}: not found`);
    if (desc.size > 0 && desc.size !== info.size)
      throw new TtrpcError(
        Code.FailedPrecondition,
        `diff ${desc.digest} is ${info.size} bytes, the descriptor says ${desc.size}`,
      );
    const sn = await this.sys.snapshotters.get(s.namespace);
    const key = await this.#snapshotOf(s.namespace, req.mounts, ["active"]);
    return this.sys.snapshotLocks.run(`${s.namespace}/${key}`, async () => {
      // Under the snapshot's lock: still there and still active (Commit and Remove take it too).
      const target = await sn.applyTarget(key);
      const res = await applyLayer(this.sys.content.openRead(desc.digest), target.dir, {
        mode: target.mode,
        parents: target.parents,
        compression,
        ...(s.signal ? { signal: s.signal } : {}),
      });
      return {
        applied: { mediaType: uncompressedLayerType, digest: res.diffId, size: res.size, annotations: {} },
      };
    });
  }

  /** The snapshot of one of `kinds` whose mounts are exactly `mounts`; InvalidArgument when none is. */
  async #snapshotOf(
    namespace: string,
    mounts: readonly types.Mount[],
    kinds: readonly SnapshotInfo["kind"][],
  ): Promise<string> {
    if (mounts.length === 0)
      throw new TtrpcError(Code.InvalidArgument, "the mounts of a snapshot are needed");
    const sn = await this.sys.snapshotters.get(namespace);
    for (const info of await sn.list()) {
      if (!kinds.includes(info.kind)) continue;
      let theirs: Awaited<ReturnType<typeof sn.mounts>>;
      try {
        theirs = await sn.mounts(info.key);
      } catch {
        continue; // removed meanwhile
      }
      if (theirs.length === mounts.length && theirs.every((m, i) => sameMount(mounts[i]!, m)))
        return info.key;
    }
    throw new TtrpcError(
      Code.InvalidArgument,
      `the mounts are not those of ${kinds.includes("view") ? "a" : "an active"} snapshot of namespace ${JSON.stringify(namespace)}: ` +
        "tsruncd applies and diffs layers only in its own snapshots (the mounts Snapshots.Prepare or View gave)",
    );
  }

  async diff(s: LeasedScope, req: diffapi.DiffRequest): Promise<diffapi.DiffResponse> {
    const mediaType = req.mediaType || uncompressedLayerType;
    if (mediaType !== uncompressedLayerType && mediaType !== gzipLayerType)
      throw new TtrpcError(
        Code.Unimplemented,
        `unsupported diff media type ${JSON.stringify(mediaType)} (${uncompressedLayerType} and +gzip are)`,
      );
    const labels = checkContentLabels({ ...req.labels });
    const lease = s.lease && this.leases ? this.leases(s.namespace, s.lease) : undefined;
    if (s.lease && this.leases && (!lease || lease.released))
      throw new TtrpcError(Code.NotFound, `lease ${JSON.stringify(s.lease)} does not exist`);
    const sn = await this.sys.snapshotters.get(s.namespace);
    // The right side's tree is its own layer over its parent's (an active snapshot), or its
    // parent's (a view); the left side's must be the tree under that layer.
    const right = await this.#snapshotOf(s.namespace, req.right, ["active", "view"]);
    const rInfo = await sn.stat(right);
    const top = rInfo.kind === "view" ? rInfo.parent : right;
    if (top === undefined)
      throw new TtrpcError(Code.FailedPrecondition, `snapshot ${JSON.stringify(right)} is an empty view`);
    let below: string | undefined;
    if (req.left.length > 0) {
      const left = await this.#snapshotOf(s.namespace, req.left, ["view"]);
      below = (await sn.stat(left)).parent;
    }
    const layer = await sn.layerDir(top);
    if (layer.parent !== below)
      throw new TtrpcError(
        Code.FailedPrecondition,
        `snapshot ${JSON.stringify(top)} is not one layer above the left mounts' ` +
          `(${below === undefined ? "an empty tree" : JSON.stringify(below)}): only such a diff is made here`,
      );
    const diffHash = createHash("sha256");
    const tar = (async function* () {
      for await (const chunk of writeOverlayLayer(layer.dir, s.signal)) {
        diffHash.update(chunk);
        yield chunk;
      }
    })();
    let source: AsyncIterable<Uint8Array> = tar;
    if (mediaType === gzipLayerType) {
      const gz = createGzip();
      (async () => {
        try {
          for await (const chunk of tar) {
            if (gz.destroyed) break; // the store gave up reading: stop making the tar
            if (!gz.write(chunk))
              await new Promise((r) => {
                gz.once("drain", r);
                gz.once("close", r);
              });
          }
          if (!gz.destroyed) gz.end();
        } catch (err) {
          if (!gz.destroyed) gz.destroy(err as Error);
        }
      })();
      source = gz;
    }
    const stored = await this.sys.content.ingestStream(source);
    const diffId = `sha256:${diffHash.digest("hex")}`;
    lease?.addBlobs(stored.digest);
    const meta = this.sys.contentMeta.get(s.namespace, stored.digest);
    this.sys.contentMeta.set(s.namespace, stored.digest, {
      ...meta?.labels,
      ...labels,
      [uncompressedLabel]: diffId,
    });
    return { diff: { mediaType, digest: stored.digest, size: stored.size, annotations: {} } };
  }
}
