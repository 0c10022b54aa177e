// containerd's rules for the labels its services keep (content, snapshots, namespaces): the size
// check on what is stored, and how an Update's field mask changes them. One copy, so the services
// cannot drift apart on what a label may be.
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { maxLabelSize } from "./store/index.js";

type Labels = Record<string, string>;

/**
 * A key is not empty, and key and value together are at most maxLabelSize bytes. `keyShown` is
 * how much of an offending key the message quotes (the callers' messages differ in that only).
 */
export function checkLabelSizes(labels: Labels, keyShown: number): Labels {
  for (const [k, v] of Object.entries(labels)) {
    if (k === "") throw new TtrpcError(Code.InvalidArgument, "label key must not be empty");
    const size = Buffer.byteLength(k) + Buffer.byteLength(v);
    if (size > maxLabelSize)
      throw new TtrpcError(
        Code.InvalidArgument,
        `label key and value length (${size} bytes) greater than maximum size (${maxLabelSize} bytes), key: ${k.slice(0, keyShown)}`,
      );
  }
  return labels;
}

/**
 * `current` after an Update whose mask is `paths`: no paths, or "labels", replaces them all with
 * `given`; "labels.KEY" sets KEY from `given`, or removes it when `given` has none or an empty
 * one; any other path is InvalidArgument, "cannot update "PATH" field on `what`". Empty values
 * are dropped.
 */
export function maskLabels(current: Labels, given: Labels, paths: readonly string[], what: string): Labels {
  let labels = { ...current };
  if (paths.length === 0) labels = { ...given };
  for (const p of paths) {
    if (p === "labels") labels = { ...given };
    else if (p.startsWith("labels.")) {
      const k = p.slice("labels.".length);
      if (Object.hasOwn(given, k) && given[k] !== "") labels[k] = given[k]!;
      else delete labels[k];
    } else throw new TtrpcError(Code.InvalidArgument, `cannot update ${JSON.stringify(p)} field on ${what}`);
  }
  for (const [k, v] of Object.entries(labels)) if (v === "") delete labels[k];
  return labels;
}
