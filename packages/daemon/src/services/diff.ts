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
// Diff (a layer from two mounts: ctr snapshots diff, container commit) is not implemented.

import { applyLayer, compressionOfMediaType, digestHex } from "@tsrunc/images";
import type { diffapi } from "@tsrunc/protocol/daemon";
import type { types } from "@tsrunc/protocol/shim";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import type { ImageSystem } from "../images/system.js";
import type { CallScope } from "./tasks.js";

/** What Apply answers (containerd's ocispec.MediaTypeImageLayer). */
export const uncompressedLayerType = "application/vnd.oci.image.layer.v1.tar";

const sameMount = (a: types.Mount, b: { type: string; source: string; options: readonly string[] }) =>
  a.type === b.type &&
  a.source === b.source &&
  a.options.length === b.options.length &&
  a.options.every((o, i) => o === b.options[i]);

export class DiffApi {
  constructor(private readonly sys: ImageSystem) {}

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
    const key = await this.#snapshotOf(s.namespace, req.mounts);
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

  /** The active snapshot whose mounts are exactly `mounts`; InvalidArgument when none is. */
  async #snapshotOf(namespace: string, mounts: readonly types.Mount[]): Promise<string> {
    if (mounts.length === 0)
      throw new TtrpcError(Code.InvalidArgument, "apply needs the mounts of a snapshot");
    const sn = await this.sys.snapshotters.get(namespace);
    for (const info of await sn.list()) {
      if (info.kind !== "active") continue;
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
      `the mounts are not those of an active snapshot of namespace ${JSON.stringify(namespace)}: ` +
        "tsruncd applies layers only into its own snapshots (Snapshots.Prepare's mounts)",
    );
  }

  async diff(_s: CallScope, _req: diffapi.DiffRequest): Promise<diffapi.DiffResponse> {
    throw new TtrpcError(
      Code.Unimplemented,
      "Diff.Diff (a layer from two mounts: ctr snapshots diff, container commit) is not implemented by tsruncd",
    );
  }
}
