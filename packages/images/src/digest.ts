// Digests as the content store accepts them: only "sha256:" + 64 lowercase hex. Anything else is
// refused with InvalidArgument before a path is ever built from it (a digest arrives from a
// registry, an archive or a client, so it is hostile until checked).

import { createHash } from "node:crypto";
import { Code, TtrpcError } from "@tsrunc/ttrpc/status";

const digestPattern = /^sha256:[0-9a-f]{64}$/;

/** True when `digest` is a sha256 digest in canonical form. */
export function isDigest(digest: unknown): digest is string {
  return typeof digest === "string" && digestPattern.test(digest);
}

/** Throws InvalidArgument unless `digest` is "sha256:" + 64 lowercase hex; returns the hex part. */
export function digestHex(digest: string): string {
  if (!isDigest(digest)) {
    const d: unknown = digest;
    const shown = typeof d === "string" ? JSON.stringify(d.slice(0, 100)) : typeof d;
    throw new TtrpcError(
      Code.InvalidArgument,
      `invalid digest ${shown}: want sha256: and 64 lowercase hex digits`,
    );
  }
  return digest.slice(7);
}

/** Throws InvalidArgument unless `size` is a non-negative safe integer. */
export function checkSize(size: unknown): number {
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0)
    throw new TtrpcError(Code.InvalidArgument, `invalid size ${String(size)}: want a non-negative integer`);
  return size;
}

/** The sha256 digest of some bytes, "sha256:<hex>". */
export function sha256Digest(data: Uint8Array | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/**
 * ChainIDs of a layer stack, one per layer: ChainID(L0) = DiffID(L0);
 * ChainID(n) = sha256(ChainID(n−1) + " " + DiffID(n)), over the full "sha256:…" strings.
 */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  let prev: string | undefined;
  for (const diffId of diffIds) {
    digestHex(diffId);
    prev = prev === undefined ? diffId : sha256Digest(`${prev} ${diffId}`);
    out.push(prev);
  }
  return out;
}

/** The ChainID of the whole stack (the last of chainIds), or undefined for no layers. */
export function chainId(diffIds: readonly string[]): string | undefined {
  return chainIds(diffIds).at(-1);
}
