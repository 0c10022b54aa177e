// Namespaces travel as request metadata, as containerd's do (`containerd-namespace`); a request
// without one works in "default". The value becomes a path component, so it obeys the
// identifier rule before anything else sees it.
import { checkIdentifier } from "@tsrunc/shim-contract/check-identifier";
import type { IncomingMetadata } from "@tsrunc/ttrpc";

export const namespaceMetadataKey = "containerd-namespace";
export const defaultNamespace = "default";

export function namespaceOf(metadata: IncomingMetadata | undefined): string {
  const ns = metadata?.[namespaceMetadataKey]?.[0];
  return checkIdentifier(ns || defaultNamespace, "namespace");
}
