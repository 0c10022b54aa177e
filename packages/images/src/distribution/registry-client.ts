// A client of the OCI distribution API (what docker/distribution, Docker Hub, ghcr, quay, … serve):
// resolve a tag to a descriptor, fetch manifests and blobs. Transport is node:http/node:https with
// keep-alive agents: HTTPS trusts Node's roots, the system bundle and any `ca` given; `plainHttp`
// talks HTTP (a loopback registry). Authentication follows the registry's 401 challenges: Basic with
// the credentials given, or the Bearer token flow (token from the realm, with Basic credentials if
// any, cached per realm/service/scope until it expires). Redirects are followed (blobs are often
// served from a storage host), dropping the Authorization header when the host changes.
// Every failure is a TtrpcError: 404 NotFound, 401 Unauthenticated, 403 PermissionDenied, 429/5xx
// and network errors Unavailable, an abort Canceled, other statuses Unknown; the message carries
// the registry's own error text.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import type { Readable } from "node:stream";
import { rootCertificates } from "node:tls";
import { Code, TtrpcError } from "@tsrunc/ttrpc/status";
import type { Descriptor } from "../content-store.js";
import { isDigest } from "../digest.js";
import { manifestAccept } from "./media-types.js";
import { apiHost, formatReference, manifestObject, type Reference, repositoryName } from "./reference.js";
import { type Challenge, parseWwwAuthenticate } from "./www-authenticate.js";

export interface Credentials {
  username: string;
  password: string;
}

export interface RegistryClientOptions {
  /** Speak plain HTTP instead of HTTPS (for a registry on loopback). */
  plainHttp?: boolean;
  /** Extra CA certificates: file paths (string) or PEM contents (Buffer), added to the system's. */
  ca?: ReadonlyArray<string | Buffer>;
  /** Skip TLS certificate verification (ctr's --skip-verify). */
  skipVerify?: boolean;
  /** Credentials for every registry, or a function of the reference's domain ("docker.io", "localhost:5000"). */
  credentials?: Credentials | ((domain: string) => Credentials | undefined);
  userAgent?: string;
  /** A request whose socket is idle this long fails with Unavailable. Default 60 s. */
  idleTimeoutMs?: number;
  /** Largest manifest accepted. Default 4 MiB. */
  maxManifestBytes?: number;
}

export interface RequestOptions {
  signal?: AbortSignal;
}

export interface Resolved {
  /** The normalized reference resolved (the image record's name): "docker.io/library/busybox:latest", "host/a@sha256:…". */
  name: string;
  /** The descriptor of the root manifest (index, list or manifest). */
  descriptor: Descriptor;
}

export interface BlobResponse {
  /** The body. Destroy it to stop early. */
  stream: Readable;
  /** Where the body starts in the blob: the asked offset if the registry honoured the Range, else 0. */
  offset: number;
}

/** Parses "user:password" (what --user takes). InvalidArgument without a colon or a user. */
export function parseCredentials(userPass: string): Credentials {
  const colon = userPass.indexOf(":");
  if (colon <= 0) throw new TtrpcError(Code.InvalidArgument, "credentials must be given as USER:PASSWORD");
  return { username: userPass.slice(0, colon), password: userPass.slice(colon + 1) };
}

const defaultUserAgent = "tsrunc/0";
const maxRedirects = 10;
const maxErrorBody = 64 * 1024;
const maxTokenBody = 1024 * 1024;
const tokenMarginMs = 10_000;
const systemBundlePaths = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"];

let systemCas: string[] | undefined;
function systemCertificates(): string[] {
  if (systemCas === undefined) {
    systemCas = [...rootCertificates];
    for (const path of systemBundlePaths) {
      try {
        systemCas.push(readFileSync(path, "utf8"));
        break;
      } catch {
        // not on this distribution
      }
    }
  }
  return systemCas;
}

/** Maps an HTTP status to the code a caller acts on. */
export function codeForStatus(status: number): Code {
  if (status === 404) return Code.NotFound;
  if (status === 401) return Code.Unauthenticated;
  if (status === 403) return Code.PermissionDenied;
  if (status === 429 || status === 408 || status >= 500) return Code.Unavailable;
  return Code.Unknown;
}

/** The registry's error text from a body {"errors":[{"code","message","detail"}]} (or the raw text). */
function registryMessage(body: Buffer): string {
  const text = body.toString("utf8").trim();
  if (text.length === 0) return "";
  try {
    const parsed = JSON.parse(text) as {
      errors?: Array<{ code?: string; message?: string; detail?: unknown }>;
    };
    if (Array.isArray(parsed.errors) && parsed.errors.length > 0) {
      return parsed.errors
        .map((e) => {
          const parts = [e.code, e.message].filter((p) => typeof p === "string" && p.length > 0);
          const detail =
            e.detail === undefined || e.detail === null ? "" : ` (${JSON.stringify(e.detail).slice(0, 300)})`;
          return parts.join(": ") + detail;
        })
        .join("; ");
    }
    const other = parsed as { error?: unknown; details?: unknown; message?: unknown };
    for (const v of [other.details, other.error, other.message]) if (typeof v === "string") return v;
  } catch {
    // not JSON
  }
  return text.replace(/\s+/g, " ").slice(0, 300);
}

async function readLimited(res: IncomingMessage, limit: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > limit) {
      res.destroy();
      throw new TtrpcError(Code.ResourceExhausted, `${what}: response larger than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/** Reads (a bounded part of) an error response and turns it into a TtrpcError. */
async function statusError(res: IncomingMessage, what: string, method = "GET"): Promise<TtrpcError> {
  const status = res.statusCode ?? 0;
  let message = "";
  if (method !== "HEAD") {
    try {
      const chunks: Buffer[] = [];
      let total = 0;
      for await (const chunk of res as AsyncIterable<Buffer>) {
        chunks.push(chunk);
        total += chunk.length;
        if (total >= maxErrorBody) break;
      }
      message = registryMessage(Buffer.concat(chunks).subarray(0, maxErrorBody));
    } catch {
      // the message is a courtesy
    }
  }
  res.destroy();
  const reason = `${status} ${http.STATUS_CODES[status] ?? ""}`.trim();
  return new TtrpcError(codeForStatus(status), `${what}: ${reason}${message ? `: ${message}` : ""}`);
}

function networkError(err: unknown, what: string, signal: AbortSignal | undefined): TtrpcError {
  if (err instanceof TtrpcError) return err;
  if (signal?.aborted || (err as Error | undefined)?.name === "AbortError")
    return new TtrpcError(Code.Canceled, `${what}: canceled`, { cause: err });
  const e = err as NodeJS.ErrnoException;
  const detail = e?.code ? `${e.code}: ${e.message}` : String(e?.message ?? err);
  return new TtrpcError(Code.Unavailable, `${what}: ${detail}`, { cause: err });
}

interface TokenEntry {
  token: string;
  expiresAt: number;
}

type HostAuth = { scheme: "basic" } | { scheme: "bearer"; realm: string; service?: string };

export class RegistryClient {
  readonly #options: RegistryClientOptions;
  readonly #httpAgent: http.Agent;
  #httpsAgent: https.Agent | undefined;
  #httpsAgentPending: Promise<https.Agent> | undefined;
  /** What each API host asked for in its last 401 challenge. */
  readonly #hostAuth = new Map<string, HostAuth>();
  /** Bearer tokens by realm, service, scope and user. */
  readonly #tokens = new Map<string, TokenEntry>();
  /** Token requests in flight, so parallel layer fetches share one. */
  readonly #tokenFetches = new Map<string, Promise<TokenEntry>>();
  /** Counters for tests and diagnostics. */
  readonly stats = { requests: 0, tokenFetches: 0 };

  constructor(options: RegistryClientOptions = {}) {
    this.#options = options;
    this.#httpAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  }

  /** Closes idle connections. */
  close(): void {
    this.#httpAgent.destroy();
    this.#httpsAgent?.destroy();
  }

  get #idleTimeoutMs(): number {
    return this.#options.idleTimeoutMs ?? 60_000;
  }

  async #agentFor(url: URL): Promise<http.Agent> {
    if (url.protocol === "http:") return this.#httpAgent;
    if (this.#httpsAgent) return this.#httpsAgent;
    this.#httpsAgentPending ??= (async () => {
      const extra: string[] = [];
      for (const ca of this.#options.ca ?? []) {
        if (Buffer.isBuffer(ca)) extra.push(ca.toString("utf8"));
        else {
          try {
            extra.push(await readFile(ca, "utf8"));
          } catch (err) {
            throw new TtrpcError(Code.InvalidArgument, `reading CA file ${ca}: ${(err as Error).message}`);
          }
        }
      }
      const agent = new https.Agent({
        keepAlive: true,
        maxSockets: 32,
        ca: [...systemCertificates(), ...extra],
        rejectUnauthorized: !this.#options.skipVerify,
      });
      this.#httpsAgent = agent;
      return agent;
    })();
    try {
      return await this.#httpsAgentPending;
    } catch (err) {
      this.#httpsAgentPending = undefined;
      throw err;
    }
  }

  #credentials(domain: string): Credentials | undefined {
    const c = this.#options.credentials;
    return typeof c === "function" ? c(domain) : c;
  }

  #baseUrl(ref: Reference): string {
    return `${this.#options.plainHttp ? "http" : "https"}://${apiHost(ref.domain)}`;
  }

  /** One HTTP exchange, no redirects, no auth logic. */
  async #send(
    url: URL,
    method: "GET" | "HEAD",
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
    what: string,
  ): Promise<IncomingMessage> {
    if (url.protocol !== "http:" && url.protocol !== "https:")
      throw new TtrpcError(Code.Unknown, `${what}: unsupported URL scheme ${url.protocol}`);
    if (signal?.aborted) throw new TtrpcError(Code.Canceled, `${what}: canceled`);
    const agent = await this.#agentFor(url);
    this.stats.requests++;
    return await new Promise<IncomingMessage>((resolve, reject) => {
      const mod = url.protocol === "https:" ? https : http;
      const req = mod.request(url, {
        method,
        headers: { "user-agent": this.#options.userAgent ?? defaultUserAgent, ...headers },
        agent,
        ...(signal ? { signal } : {}),
      });
      req.setTimeout(this.#idleTimeoutMs, () => {
        req.destroy(
          new TtrpcError(Code.Unavailable, `${what}: no data from ${url.host} for ${this.#idleTimeoutMs} ms`),
        );
      });
      req.once("error", (err) => reject(networkError(err, what, signal)));
      req.once("response", (res) => {
        // Errors while reading the body surface on the response stream with a status code.
        req.on("error", (err) => {
          if (!res.destroyed) res.destroy(networkError(err, what, signal));
        });
        resolve(res);
      });
      req.end();
    });
  }

  /** Follows redirects; the Authorization header only goes to the original host. */
  async #sendFollowing(
    url: URL,
    method: "GET" | "HEAD",
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
    what: string,
  ): Promise<IncomingMessage> {
    let current = url;
    let hdrs = headers;
    for (let hop = 0; ; hop++) {
      const res = await this.#send(current, method, hdrs, signal, what);
      const status = res.statusCode ?? 0;
      const location = res.headers.location;
      if (![301, 302, 303, 307, 308].includes(status) || location === undefined) return res;
      res.resume();
      if (hop >= maxRedirects) throw new TtrpcError(Code.Unavailable, `${what}: too many redirects`);
      const next = new URL(location, current);
      if (next.host !== url.host || next.protocol !== url.protocol) {
        const { authorization: _dropped, ...rest } = hdrs;
        hdrs = rest;
      }
      current = next;
    }
  }

  /**
   * A request to the registry API for `ref`'s repository, authenticated as its challenges ask.
   * Returns a 2xx response; anything else is thrown as a TtrpcError.
   */
  async #request(
    ref: Reference,
    method: "GET" | "HEAD",
    path: string,
    headers: Record<string, string>,
    options: RequestOptions,
    what: string,
    alsoOk: readonly number[] = [],
  ): Promise<IncomingMessage> {
    const host = apiHost(ref.domain);
    const url = new URL(`${this.#baseUrl(ref)}/v2/${ref.path}/${path}`);
    const scope = `repository:${ref.path}:pull`;
    for (let attempt = 0; ; attempt++) {
      const authorization = await this.#authorization(ref.domain, host, scope, options.signal, what);
      const res = await this.#sendFollowing(
        url,
        method,
        authorization === undefined ? headers : { ...headers, authorization },
        options.signal,
        what,
      );
      const status = res.statusCode ?? 0;
      if ((status >= 200 && status < 300) || alsoOk.includes(status)) return res;
      if (status !== 401 || attempt > 0) throw await statusError(res, what, method);
      // 401: learn the challenge, then try once more with what it asks for.
      const challenge = pickChallenge(parseWwwAuthenticate(res.headers["www-authenticate"]));
      if (challenge === undefined) throw await statusError(res, what, method);
      const learnt = this.#learn(host, challenge);
      if (learnt.scheme === "basic" && this.#credentials(ref.domain) === undefined)
        throw await statusError(res, `${what} (the registry wants a user and password)`, method);
      if (authorization?.startsWith("Bearer ")) {
        // A token we had was refused (expired or revoked): forget it.
        this.#tokens.delete(this.#tokenKey(learnt, scope, ref.domain));
      }
      res.resume();
    }
  }

  #learn(host: string, challenge: Challenge): HostAuth {
    const auth: HostAuth =
      challenge.scheme === "bearer"
        ? {
            scheme: "bearer",
            realm: challenge.params.realm ?? "",
            ...(challenge.params.service === undefined ? {} : { service: challenge.params.service }),
          }
        : { scheme: "basic" };
    this.#hostAuth.set(host, auth);
    return auth;
  }

  #tokenKey(auth: HostAuth, scope: string, domain: string): string {
    const realm = auth.scheme === "bearer" ? auth.realm : "";
    const service = auth.scheme === "bearer" ? (auth.service ?? "") : "";
    return `${realm}\n${service}\n${scope}\n${this.#credentials(domain)?.username ?? ""}`;
  }

  /** The Authorization header value for a request, if the host has asked for one. */
  async #authorization(
    domain: string,
    host: string,
    scope: string,
    signal: AbortSignal | undefined,
    what: string,
  ): Promise<string | undefined> {
    const auth = this.#hostAuth.get(host);
    if (auth === undefined) return undefined;
    const creds = this.#credentials(domain);
    if (auth.scheme === "basic") {
      if (creds === undefined) return undefined;
      return `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`;
    }
    const key = this.#tokenKey(auth, scope, domain);
    const cached = this.#tokens.get(key);
    if (cached !== undefined && cached.expiresAt - tokenMarginMs > Date.now())
      return `Bearer ${cached.token}`;
    let pending = this.#tokenFetches.get(key);
    if (pending === undefined) {
      pending = this.#fetchToken(auth, scope, creds, signal, what).finally(() =>
        this.#tokenFetches.delete(key),
      );
      this.#tokenFetches.set(key, pending);
    }
    const entry = await pending;
    this.#tokens.set(key, entry);
    return `Bearer ${entry.token}`;
  }

  async #fetchToken(
    auth: { realm: string; service?: string },
    scope: string,
    creds: Credentials | undefined,
    signal: AbortSignal | undefined,
    what: string,
  ): Promise<TokenEntry> {
    const tokenWhat = `${what}: getting a token from ${auth.realm}`;
    let url: URL;
    try {
      url = new URL(auth.realm);
    } catch {
      throw new TtrpcError(Code.Unauthenticated, `${tokenWhat}: the registry's realm is not a URL`);
    }
    if (auth.service !== undefined) url.searchParams.set("service", auth.service);
    url.searchParams.append("scope", scope);
    const headers: Record<string, string> = { accept: "application/json" };
    if (creds !== undefined) {
      url.searchParams.set("account", creds.username);
      headers.authorization = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString("base64")}`;
    }
    this.stats.tokenFetches++;
    const issuedAt = Date.now();
    const res = await this.#sendFollowing(url, "GET", headers, signal, tokenWhat);
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw await statusError(res, tokenWhat);
    const body = await readLimited(res, maxTokenBody, tokenWhat);
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      throw new TtrpcError(Code.Unauthenticated, `${tokenWhat}: the answer is not JSON`);
    }
    const token = typeof parsed.token === "string" && parsed.token ? parsed.token : parsed.access_token;
    if (typeof token !== "string" || token.length === 0)
      throw new TtrpcError(Code.Unauthenticated, `${tokenWhat}: the answer holds no token`);
    // The spec's default lifetime is 60 s.
    const expiresIn =
      typeof parsed.expires_in === "number" && parsed.expires_in > 0
        ? Math.min(parsed.expires_in, 86_400)
        : 60;
    return { token, expiresAt: issuedAt + expiresIn * 1000 };
  }

  /**
   * Resolves a reference to its root descriptor: HEAD of the manifest with the Accept list of
   * OCI index/manifest and Docker list/schema 2; a GET when HEAD is refused or lacks the digest.
   * A reference with a digest is checked against what the registry answers.
   */
  async resolve(ref: Reference, options: RequestOptions = {}): Promise<Resolved> {
    const name = formatReference(ref);
    const object = manifestObject(ref);
    const what = `resolving ${formatReference(ref)}`;
    const path = `manifests/${object}`;
    const headers = { accept: manifestAccept };
    let head: IncomingMessage | undefined;
    try {
      head = await this.#request(ref, "HEAD", path, headers, options, what);
    } catch (err) {
      // A HEAD answer has no body to explain itself: the GET below says what went wrong.
      if (options.signal?.aborted || (err instanceof TtrpcError && err.code === Code.Canceled)) throw err;
      head = undefined;
    }
    if (head !== undefined) {
      head.resume();
      const mediaType = contentType(head);
      const digest = head.headers["docker-content-digest"];
      const length = Number(head.headers["content-length"]);
      const known = ref.digest ?? (typeof digest === "string" ? digest : undefined);
      if (
        mediaType !== undefined &&
        known !== undefined &&
        isDigest(known) &&
        Number.isSafeInteger(length) &&
        length > 0
      ) {
        if (ref.digest !== undefined && typeof digest === "string" && digest !== ref.digest)
          throw new TtrpcError(
            Code.DataLoss,
            `${what}: the registry answered with ${digest}, not the digest asked for`,
          );
        return { name, descriptor: { mediaType, digest: known, size: length } };
      }
    }
    const res = await this.#request(ref, "GET", path, headers, options, what);
    const mediaType = contentType(res);
    const body = await readLimited(res, this.#maxManifestBytes, what);
    const actual = `sha256:${createHash("sha256").update(body).digest("hex")}`;
    if (ref.digest !== undefined && ref.digest !== actual)
      throw new TtrpcError(Code.DataLoss, `${what}: the registry's manifest has digest ${actual}`);
    const type = mediaType ?? sniffMediaType(body);
    if (type === undefined) throw new TtrpcError(Code.Unknown, `${what}: the manifest has no media type`);
    return { name, descriptor: { mediaType: type, digest: actual, size: body.length } };
  }

  get #maxManifestBytes(): number {
    return this.#options.maxManifestBytes ?? 4 * 1024 * 1024;
  }

  /** Fetches a manifest (index, list or image manifest) by descriptor; size and digest are verified. */
  async fetchManifest(ref: Reference, desc: Descriptor, options: RequestOptions = {}): Promise<Buffer> {
    const what = `fetching manifest ${repositoryName(ref)}@${desc.digest}`;
    if (desc.size > this.#maxManifestBytes)
      throw new TtrpcError(
        Code.ResourceExhausted,
        `${what}: ${desc.size} bytes, more than the ${this.#maxManifestBytes} allowed`,
      );
    const accept = desc.mediaType ? `${desc.mediaType}, ${manifestAccept}` : manifestAccept;
    const res = await this.#request(ref, "GET", `manifests/${desc.digest}`, { accept }, options, what);
    return verify(await readLimited(res, desc.size, what), desc, what);
  }

  /** Fetches a small blob (a config) whole; size and digest are verified. */
  async fetchBlobBytes(
    ref: Reference,
    desc: Descriptor,
    maxBytes: number,
    options: RequestOptions = {},
  ): Promise<Buffer> {
    const what = `fetching blob ${repositoryName(ref)}@${desc.digest}`;
    if (desc.size > maxBytes)
      throw new TtrpcError(
        Code.ResourceExhausted,
        `${what}: ${desc.size} bytes, more than the ${maxBytes} allowed`,
      );
    const { stream } = await this.fetchBlob(ref, desc, options);
    return verify(await readLimited(stream as IncomingMessage, desc.size, what), desc, what);
  }

  /**
   * A blob's bytes as a stream, from `offset` when the registry honours a Range request (check
   * the returned offset: 0 means it sent the whole blob). The caller verifies what it reads.
   */
  async fetchBlob(
    ref: Reference,
    desc: Descriptor,
    options: RequestOptions & { offset?: number } = {},
  ): Promise<BlobResponse> {
    const what = `fetching blob ${repositoryName(ref)}@${desc.digest}`;
    if (!isDigest(desc.digest)) throw new TtrpcError(Code.InvalidArgument, `${what}: not a sha256 digest`);
    const offset = options.offset ?? 0;
    const headers: Record<string, string> = { accept: "*/*" };
    if (offset > 0) headers.range = `bytes=${offset}-`;
    const res = await this.#request(ref, "GET", `blobs/${desc.digest}`, headers, options, what, [416]);
    if (res.statusCode === 416) {
      // The registry will not serve that range: ask for the whole blob.
      if (offset === 0) throw await statusError(res, what);
      res.resume();
      return this.fetchBlob(ref, desc, { ...options, offset: 0 });
    }
    if (res.statusCode === 206) {
      const start = /^bytes (\d+)-/.exec(String(res.headers["content-range"] ?? ""));
      if (start === null || Number(start[1]) !== offset) {
        res.destroy();
        throw new TtrpcError(
          Code.Unknown,
          `${what}: the registry answered range ${res.headers["content-range"]}`,
        );
      }
      return { stream: res, offset };
    }
    return { stream: res, offset: 0 };
  }
}

function contentType(res: IncomingMessage): string | undefined {
  const t = res.headers["content-type"];
  if (typeof t !== "string" || t.length === 0) return undefined;
  return t.split(";")[0]!.trim();
}

function verify(body: Buffer, desc: Descriptor, what: string): Buffer {
  if (body.length !== desc.size)
    throw new TtrpcError(Code.DataLoss, `${what}: got ${body.length} bytes, expected ${desc.size}`);
  const actual = `sha256:${createHash("sha256").update(body).digest("hex")}`;
  if (actual !== desc.digest) throw new TtrpcError(Code.DataLoss, `${what}: the bytes have digest ${actual}`);
  return body;
}

/** A media type from a manifest's own "mediaType" field or its shape. */
export function sniffMediaType(body: Buffer): string | undefined {
  try {
    const m = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
    if (typeof m.mediaType === "string") return m.mediaType;
    if (m.schemaVersion === 1) return "application/vnd.docker.distribution.manifest.v1+json";
    if (Array.isArray(m.manifests)) return "application/vnd.oci.image.index.v1+json";
    if (typeof m.config === "object" && Array.isArray(m.layers))
      return "application/vnd.oci.image.manifest.v1+json";
  } catch {
    // not JSON
  }
  return undefined;
}

/** Bearer first (it works without credentials), then Basic; other schemes are not spoken. */
function pickChallenge(challenges: Challenge[]): Challenge | undefined {
  return (
    challenges.find((c) => c.scheme === "bearer" && c.params.realm) ??
    challenges.find((c) => c.scheme === "basic")
  );
}
