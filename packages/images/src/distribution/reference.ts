// Image references, parsed and normalized the way containerd and nerdctl read what a person types:
//   busybox                      → docker.io/library/busybox:latest
//   user/app:1.2                 → docker.io/user/app:1.2
//   localhost:5000/a/b:tag       → localhost:5000/a/b:tag
//   quay.io/x/y@sha256:<hex>     → quay.io/x/y@sha256:<hex>
// The grammar is distribution's reference grammar (domain, path components, tag, digest). A
// reference comes from a user or a registry's answer, so every failure is InvalidArgument with the
// offending text quoted.

import { Code, TtrpcError } from "@tsrunc/ttrpc/status";

/** Docker Hub's canonical domain in normalized names. */
export const dockerHubDomain = "docker.io";
/** The host that serves Docker Hub's registry API. */
export const dockerHubApiHost = "registry-1.docker.io";
const legacyDockerHubDomain = "index.docker.io";
const officialRepoPrefix = "library/";
const defaultTag = "latest";
const maxNameLength = 255;

// One path component: lowercase alphanumerics separated by ".", "_", "__" or runs of "-".
const pathComponent = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
// A domain: DNS labels separated by dots, or an IPv6 literal in brackets, then an optional port.
const domainPattern =
  /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$/;
const tagPattern = /^[\w][\w.-]{0,127}$/;
const digestPattern = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const anchoredHex64 = /^[a-f0-9]{64}$/;

/** A parsed, normalized image reference. */
export interface Reference {
  /** Registry domain as written in names: "docker.io", "localhost:5000", "[::1]:5000". */
  readonly domain: string;
  /** Repository path inside the registry: "library/busybox". */
  readonly path: string;
  /** The tag, if any. A reference with neither tag nor digest gets "latest". */
  readonly tag?: string;
  /** The digest, if any ("sha256:…"); it wins over the tag when resolving. */
  readonly digest?: string;
}

function invalid(ref: string, why: string): TtrpcError {
  return new TtrpcError(
    Code.InvalidArgument,
    `invalid reference ${JSON.stringify(ref.slice(0, 300))}: ${why}`,
  );
}

/** Splits "name" into its domain and path as containerd does (docker.io when no domain is written). */
function splitDomain(ref: string, name: string): { domain: string; path: string } {
  const slash = name.indexOf("/");
  let domain: string;
  let path: string;
  const first = slash === -1 ? "" : name.slice(0, slash);
  // The first component is a domain only if it looks like one: a dot, a port, "localhost", or
  // upper-case letters (which a repository path can never hold).
  if (slash === -1 || (!/[.:]/.test(first) && first !== "localhost" && first.toLowerCase() === first)) {
    domain = dockerHubDomain;
    path = name;
  } else {
    domain = first;
    path = name.slice(slash + 1);
  }
  if (!domainPattern.test(domain)) throw invalid(ref, `invalid registry domain ${JSON.stringify(domain)}`);
  if (domain === legacyDockerHubDomain) domain = dockerHubDomain;
  if (domain === dockerHubDomain && !path.includes("/")) path = officialRepoPrefix + path;
  return { domain, path };
}

/**
 * Parses and normalizes a reference as containerd/nerdctl do. A reference without tag or digest
 * gets the tag "latest"; a bare 64-hex string is refused (it would be read as an image id).
 */
export function parseReference(input: string): Reference {
  if (typeof input !== "string" || input.length === 0) throw invalid(String(input), "empty reference");
  if (input.trim() !== input || /\s/.test(input)) throw invalid(input, "contains whitespace");
  if (anchoredHex64.test(input))
    throw invalid(input, "a 64-character hexadecimal string cannot be a repository name (an image id?)");

  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    checkDigest(input, digest);
  }
  let tag: string | undefined;
  // A tag follows the last ":" only if no "/" comes after it (a ":" before a "/" is a port).
  const colon = rest.lastIndexOf(":");
  if (colon !== -1 && !rest.slice(colon + 1).includes("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!tagPattern.test(tag)) throw invalid(input, `invalid tag ${JSON.stringify(tag)}`);
  }
  if (rest.length === 0) throw invalid(input, "missing repository name");

  const { domain, path } = splitDomain(input, rest);
  if (path.length === 0) throw invalid(input, "missing repository path");
  for (const component of path.split("/")) {
    if (!pathComponent.test(component)) {
      if (component.toLowerCase() !== component && pathComponent.test(component.toLowerCase()))
        throw invalid(input, "repository name must be lowercase");
      throw invalid(input, `invalid repository path component ${JSON.stringify(component)}`);
    }
  }
  if (domain.length + 1 + path.length > maxNameLength)
    throw invalid(input, `repository name longer than ${maxNameLength} characters`);
  if (tag === undefined && digest === undefined) tag = defaultTag;
  return {
    domain,
    path,
    ...(tag === undefined ? {} : { tag }),
    ...(digest === undefined ? {} : { digest }),
  };
}

function checkDigest(input: string, digest: string): void {
  if (!digestPattern.test(digest)) throw invalid(input, `invalid digest ${JSON.stringify(digest)}`);
  const [algorithm, hex] = digest.split(":") as [string, string];
  if (algorithm === "sha256") {
    if (!anchoredHex64.test(hex))
      throw invalid(input, "a sha256 digest must have 64 lowercase hexadecimal characters");
  } else if (algorithm === "sha512") {
    if (!/^[a-f0-9]{128}$/.test(hex))
      throw invalid(input, "a sha512 digest must have 128 lowercase hexadecimal characters");
  } else {
    throw invalid(input, `unsupported digest algorithm ${JSON.stringify(algorithm)}`);
  }
}

/** "docker.io/library/busybox" — the repository's full name. */
export function repositoryName(ref: Reference): string {
  return `${ref.domain}/${ref.path}`;
}

/** The normalized reference: "docker.io/library/busybox:latest", "host/a@sha256:…", "host/a:t@sha256:…". */
export function formatReference(ref: Reference): string {
  return (
    repositoryName(ref) +
    (ref.tag === undefined ? "" : `:${ref.tag}`) +
    (ref.digest === undefined ? "" : `@${ref.digest}`)
  );
}

/** Parses and returns the normalized string form: normalizeReference("busybox") = "docker.io/library/busybox:latest". */
export function normalizeReference(input: string): string {
  return formatReference(parseReference(input));
}

/** The short form people write, as `docker`/`nerdctl images` shows it: "busybox:latest", "user/app:1". */
export function familiarName(ref: Reference): string {
  let name = repositoryName(ref);
  if (ref.domain === dockerHubDomain) {
    name = ref.path.startsWith(officialRepoPrefix) ? ref.path.slice(officialRepoPrefix.length) : ref.path;
  }
  return (
    name + (ref.tag === undefined ? "" : `:${ref.tag}`) + (ref.digest === undefined ? "" : `@${ref.digest}`)
  );
}

/** What a manifest is asked for by: the digest if there is one, else the tag. */
export function manifestObject(ref: Reference): string {
  return ref.digest ?? ref.tag ?? defaultTag;
}

/** The host (and port) that serves a domain's registry API: docker.io is served by registry-1.docker.io. */
export function apiHost(domain: string): string {
  return domain === dockerHubDomain || domain === legacyDockerHubDomain ? dockerHubApiHost : domain;
}

/** The same reference pinned to a digest (the tag is kept for display, as containerd names it). */
export function withDigest(ref: Reference, digest: string): Reference {
  return { ...ref, digest };
}

/** True for hosts that are this machine: localhost, 127.0.0.0/8, ::1 (with or without a port). */
export function isLoopbackHost(host: string): boolean {
  let name = host;
  if (name.startsWith("[")) name = name.slice(1, name.indexOf("]"));
  else if (name.includes(":")) name = name.slice(0, name.lastIndexOf(":"));
  return name === "localhost" || name === "::1" || /^127(?:\.\d{1,3}){3}$/.test(name);
}
