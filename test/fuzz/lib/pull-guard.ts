// The safety net for ImageTools.Pull in the daemon fuzz campaigns: no fuzzed pull may reach the
// outside world. A PullRequest is let through only if the daemon rejects it before any network
// access (undecodable, or a ref its parser refuses: the daemon parses the ref first of all) or if
// its ref names the registry 127.0.0.1:1, where nothing listens (tcpmux: privileged, unused; the
// campaigns check that a connect there is refused before they start). Everything else is
// rewritten to that registry, keeping the parsed path, tag and digest. The daemon runs with a
// clean environment (test/helpers/daemon.ts: no proxy variables) and follows redirects only from
// a registry's answers, so a refused connect is the end of it.
//
// Both campaigns also check every request at the moment it is sent (unsafePull, over the bytes a
// frame-level case writes), so an arbitrary that forgot to sanitize cannot leak either.
import * as net from "node:net";
import { parseReference } from "@tsrunc/images/distribution";
import { ImageToolsService } from "@tsrunc/protocol/daemon";
import { decodeRequest } from "@tsrunc/ttrpc";
import { parseAll, T_REQUEST } from "./wire.js";

export const DEAD_HOST = "127.0.0.1";
export const DEAD_PORT = 1;
export const DEAD_REGISTRY = `${DEAD_HOST}:${DEAD_PORT}`;

const pullCodec = ImageToolsService.methods.pull.requestType;
const PULL_SERVICE = ImageToolsService.name;
const PULL_METHOD = ImageToolsService.methods.pull.name;

/** The registry domain a ref would be pulled from, or undefined when the ref does not parse. */
function domainOf(ref: string): string | undefined {
  try {
    return parseReference(ref).domain;
  } catch {
    return undefined;
  }
}

/** True when a Pull with this payload cannot leave the machine. */
export function pullSafe(payload: Uint8Array | undefined): boolean {
  let ref: string;
  try {
    ref = pullCodec.decode(payload ?? new Uint8Array(0)).ref;
  } catch {
    return true; // the daemon cannot decode it either: InvalidArgument
  }
  const domain = domainOf(ref);
  return domain === undefined || domain === DEAD_REGISTRY;
}

/** A Pull payload made safe: a ref that parses is pointed at the dead registry. */
export function sanitizePull(payload: Uint8Array): Uint8Array {
  if (pullSafe(payload)) return payload;
  const req = pullCodec.decode(payload);
  const r = parseReference(req.ref);
  let ref = `${DEAD_REGISTRY}/${r.path}${r.tag ? `:${r.tag}` : ""}${r.digest ? `@${r.digest}` : ""}`;
  if (domainOf(ref) !== DEAD_REGISTRY) ref = `${DEAD_REGISTRY}/fz/rewritten:1`;
  const out = pullCodec.encode({ ...req, ref });
  if (!pullSafe(out)) throw new Error(`pull-guard: could not make ${JSON.stringify(req.ref)} safe`);
  return out;
}

/** True when (service, method, payload) is a Pull that could reach the network. */
export function unsafeCall(service: string, method: string, payload: Uint8Array | undefined): boolean {
  return service === PULL_SERVICE && method === PULL_METHOD && !pullSafe(payload);
}

/**
 * The unsafe Pulls in a byte stream as the server would read it (the reference parser the
 * connection model uses): any request frame, however it came to be in the bytes.
 */
export function unsafePulls(bytes: Uint8Array): number {
  let n = 0;
  for (const ev of parseAll(bytes).events) {
    if (ev.kind !== "frame" || ev.type !== T_REQUEST) continue;
    try {
      const req = decodeRequest(ev.data);
      if (unsafeCall(req.service, req.method, req.payload)) n++;
    } catch {
      // not a request the server can read
    }
  }
  return n;
}

/** Resolves to true when a TCP connect to the dead registry is refused (nothing listens there). */
export function deadRegistryRefuses(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: DEAD_HOST, port: DEAD_PORT });
    const done = (v: boolean) => {
      s.destroy();
      resolve(v);
    };
    s.setTimeout(2000, () => done(false));
    s.once("connect", () => done(false));
    s.once("error", (e: NodeJS.ErrnoException) => done(e.code === "ECONNREFUSED"));
  });
}
