// A one-layer busybox image imported into a test's containerd, for tasks whose rootfs comes from
// the snapshotter (overlayfs mounted on <bundle>/rootfs by the shim) rather than `--rootfs DIR`.
// Built offline from the same busybox rootfs as Containerd.rootfs(): an OCI layout tar with an
// uncompressed layer, imported with `ctr image import` (~100 ms).

import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { execa } from "execa";
import type { Containerd } from "./containerd.js";
import { makeBusyboxRootfs } from "./rootfs.js";

const GO_ARCH: Record<string, string> = {
  x64: "amd64",
  arm64: "arm64",
  arm: "arm",
  ppc64: "ppc64le",
  s390x: "s390x",
};

/** What an image archive may carry besides the busybox layer. */
export interface BusyboxImageOptions {
  /** The image config's `config` (Entrypoint, Cmd, Env, StopSignal, …). Default `{}`. */
  config?: Record<string, unknown>;
}

/**
 * Builds a one-layer busybox OCI archive at `archive` (offline) naming every ref in `refs`, one
 * manifest for all of them; `scratch` is a directory it may create and remove (the rootfs, the
 * layout). Import it with `ctr image import` into as many containerds as you like.
 */
export async function buildBusyboxImageArchive(
  scratch: string,
  archive: string,
  refs: string[],
  opts: BusyboxImageOptions = {},
): Promise<void> {
  const rootfs = makeBusyboxRootfs(path.join(scratch, "image-rootfs"));
  const dir = path.join(scratch, "image-oci");
  const blobs = path.join(dir, "blobs", "sha256");
  fs.mkdirSync(blobs, { recursive: true });
  const blob = (data: Buffer) => {
    const hex = createHash("sha256").update(data).digest("hex");
    fs.writeFileSync(path.join(blobs, hex), data);
    return { digest: `sha256:${hex}`, size: data.length };
  };
  const platform = { architecture: GO_ARCH[process.arch] ?? process.arch, os: "linux" };
  const tar = await execa("tar", ["--numeric-owner", "-C", rootfs, "-c", "."], { encoding: "buffer" });
  const layer = blob(Buffer.from(tar.stdout));
  const config = blob(
    Buffer.from(
      JSON.stringify({
        ...platform,
        config: opts.config ?? {},
        rootfs: { type: "layers", diff_ids: [layer.digest] },
      }),
    ),
  );
  const manifest = blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
        layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layer }],
      }),
    ),
  );
  fs.writeFileSync(path.join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  fs.writeFileSync(
    path.join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: refs.map((ref) => ({
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        ...manifest,
        platform,
        annotations: { "io.containerd.image.name": ref },
      })),
    }),
  );
  await execa("tar", ["-C", dir, "-cf", archive, "."]);
  fs.rmSync(dir, { recursive: true });
  fs.rmSync(rootfs, { recursive: true });
}

/** Imports a busybox image named `ref` into `cd` and returns `ref`. */
export async function importBusyboxImage(
  cd: Containerd,
  ref = "docker.io/tsr/busybox:latest",
): Promise<string> {
  const archive = path.join(cd.root, "image.tar");
  await buildBusyboxImageArchive(cd.root, archive, [ref]);
  const r = await cd.ctr(["image", "import", archive]);
  if (r.exitCode !== 0) throw new Error(`${r.command}: ${r.stderr}`);
  return ref;
}
