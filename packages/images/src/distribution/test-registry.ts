// Test support for the distribution tests (not a test itself): a real docker-registry
// (distribution 2.8 from Debian) on a loopback port, a hand-made OCI layout with a multi-platform
// index pushed into it with skopeo, certificates made with openssl, a token realm that issues
// JWTs the registry verifies, and helpers to clean everything up when a test ends, passed or not.

import { type ChildProcess, spawn } from "node:child_process";
import { createHash, createPrivateKey, randomBytes, sign, X509Certificate } from "node:crypto";
import { rmSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { execa } from "execa";
import type { Test } from "tap";
import type { Descriptor } from "../content-store.js";

export const registryBinary = "docker-registry";

// What a test process leaves must go even when it dies before its teardowns run (a failed
// top-level setup, an uncaught error): registries also get SIGKILL from the kernel when this
// process dies (setpriv --pdeathsig), and an exit hook removes what is left.
const liveDirs = new Set<string>();
const liveChildren = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of liveChildren) child.kill("SIGKILL");
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh temporary directory, removed when the test ends (or the process exits). */
export async function tempDir(t: Test, prefix = "tsrunc-dist-"): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  liveDirs.add(dir);
  t.teardown(async () => {
    await rm(dir, { recursive: true, force: true });
    liveDirs.delete(dir);
  });
  return dir;
}

/** A port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

// ---------- a tiny tar writer (ustar), enough for regular files and directories ----------

interface TarEntry {
  name: string;
  data?: Buffer;
  dir?: boolean;
  mode?: number;
}

function tarHeader(name: string, size: number, type: "0" | "5", mode: number): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, "utf8");
  h.write(`${mode.toString(8).padStart(7, "0")}\0`, 100);
  h.write("0000000\0", 108); // uid
  h.write("0000000\0", 116); // gid
  h.write(`${size.toString(8).padStart(11, "0")}\0`, 124);
  h.write(`${(1_700_000_000).toString(8).padStart(11, "0")}\0`, 136);
  h.write("        ", 148); // checksum placeholder
  h.write(type, 156);
  h.write("ustar\0", 257);
  h.write("00", 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return h;
}

export function makeTar(entries: TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    if (e.dir) {
      parts.push(tarHeader(e.name.endsWith("/") ? e.name : `${e.name}/`, 0, "5", e.mode ?? 0o755));
      continue;
    }
    const data = e.data ?? Buffer.alloc(0);
    parts.push(tarHeader(e.name, data.length, "0", e.mode ?? 0o644), data);
    const pad = (512 - (data.length % 512)) % 512;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

// ---------- a hand-made OCI layout ----------

const sha256 = (b: Buffer | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

export interface BuiltImage {
  manifest: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  /** What each layer's tar holds under /etc/platform (to check the right platform was pulled). */
  platform: string;
}

export interface Fixture {
  layout: string;
  /** Root index of the tag "multi": linux/amd64, linux/arm64/v8, linux/arm/v7. */
  multi: { index: Descriptor; images: BuiltImage[] };
  /** The tag "single": one manifest, no index (linux/amd64), with a big uncompressed layer. */
  single: BuiltImage;
  /** Every blob of the layout, by digest. */
  blobs: Map<string, Buffer>;
}

async function writeBlob(layout: string, blobs: Map<string, Buffer>, data: Buffer): Promise<string> {
  const digest = sha256(data);
  blobs.set(digest, data);
  await writeFile(join(layout, "blobs", "sha256", digest.slice(7)), data);
  return digest;
}

async function buildImage(
  layout: string,
  blobs: Map<string, Buffer>,
  platform: { os: string; architecture: string; variant?: string },
  bigLayerBytes: number,
): Promise<BuiltImage> {
  const name = `${platform.os}/${platform.architecture}${platform.variant ? `/${platform.variant}` : ""}`;
  const layerTars = [
    makeTar([
      { name: "etc", dir: true },
      { name: "etc/platform", data: Buffer.from(`${name}\n`) },
      { name: "etc/hostname", data: Buffer.from("tsrunc\n") },
    ]),
    makeTar([
      { name: "bin", dir: true },
      { name: "bin/hello", data: Buffer.from(`#!/bin/sh\necho ${name}\n`), mode: 0o755 },
    ]),
  ];
  const layers: Descriptor[] = [];
  const diffIds: string[] = [];
  for (const tar of layerTars) {
    const gz = gzipSync(tar);
    layers.push({
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
      digest: await writeBlob(layout, blobs, gz),
      size: gz.length,
    });
    diffIds.push(sha256(tar));
  }
  if (bigLayerBytes > 0) {
    const tar = makeTar([{ name: "big.bin", data: randomBytes(bigLayerBytes) }]);
    layers.push({
      mediaType: "application/vnd.oci.image.layer.v1.tar",
      digest: await writeBlob(layout, blobs, tar),
      size: tar.length,
    });
    diffIds.push(sha256(tar));
  }
  const configJson = Buffer.from(
    JSON.stringify({
      created: "2024-01-01T00:00:00Z",
      ...platform,
      config: { Cmd: ["/bin/hello"], Env: ["PATH=/bin"] },
      rootfs: { type: "layers", diff_ids: diffIds },
      history: diffIds.map(() => ({ created_by: "tsrunc test" })),
    }),
  );
  const config: Descriptor = {
    mediaType: "application/vnd.oci.image.config.v1+json",
    digest: await writeBlob(layout, blobs, configJson),
    size: configJson.length,
  };
  const manifestJson = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config,
      layers,
    }),
  );
  const manifest: Descriptor = {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: await writeBlob(layout, blobs, manifestJson),
    size: manifestJson.length,
    platform,
  };
  return { manifest, config, layers, platform: name };
}

/**
 * Builds an OCI layout under `dir`: tag "multi" (an index of three platforms, two small gzip
 * layers each) and tag "single" (linux/amd64, plus one uncompressed layer of `bigLayerBytes`).
 */
export async function buildFixture(dir: string, bigLayerBytes = 0): Promise<Fixture> {
  const layout = join(dir, "layout");
  await mkdir(join(layout, "blobs", "sha256"), { recursive: true });
  const blobs = new Map<string, Buffer>();
  const platforms = [
    { os: "linux", architecture: "amd64" },
    { os: "linux", architecture: "arm64", variant: "v8" },
    { os: "linux", architecture: "arm", variant: "v7" },
  ];
  const images: BuiltImage[] = [];
  for (const p of platforms) images.push(await buildImage(layout, blobs, p, 0));
  const indexJson = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: images.map((i) => i.manifest),
    }),
  );
  const index: Descriptor = {
    mediaType: "application/vnd.oci.image.index.v1+json",
    digest: await writeBlob(layout, blobs, indexJson),
    size: indexJson.length,
  };
  const single = await buildImage(layout, blobs, { os: "linux", architecture: "amd64" }, bigLayerBytes);
  const { platform: _p, ...singleManifest } = single.manifest;
  await writeFile(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(layout, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        { ...index, annotations: { "org.opencontainers.image.ref.name": "multi" } },
        { ...singleManifest, annotations: { "org.opencontainers.image.ref.name": "single" } },
      ],
    }),
  );
  return { layout, multi: { index, images }, single, blobs };
}

/** skopeo copy of one tag of the layout into a registry, keeping every digest unless converting (--format). */
export async function pushTag(
  layout: string,
  tag: string,
  dest: string,
  extra: string[] = ["--dest-tls-verify=false"],
): Promise<void> {
  await execa("skopeo", [
    "copy",
    "--quiet",
    "--all",
    ...(extra.includes("--format") ? [] : ["--preserve-digests"]),
    ...extra,
    `oci:${layout}:${tag}`,
    `docker://${dest}`,
  ]);
}

/** skopeo options that convert an OCI index into a Docker manifest list of schema 2 manifests. */
export const dockerFormat = ["--dest-tls-verify=false", "--format", "v2s2"];

// ---------- docker-registry ----------

export interface RegistryConfig {
  rootdir: string;
  tls?: { certificate: string; key: string };
  htpasswd?: string;
  token?: { realm: string; service: string; issuer: string; rootcertbundle: string };
}

export interface RunningRegistry {
  /** "127.0.0.1:PORT" */
  host: string;
  port: number;
  process: ChildProcess;
  /** What the registry wrote to stderr (for diagnostics). */
  log: () => string;
  stop: () => Promise<void>;
}

function registryYaml(addr: string, c: RegistryConfig): string {
  const lines = [
    "version: 0.1",
    "log:",
    "  level: warn",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${JSON.stringify(c.rootdir)}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: ${JSON.stringify(addr)}`,
  ];
  if (c.tls)
    lines.push(
      "  tls:",
      `    certificate: ${JSON.stringify(c.tls.certificate)}`,
      `    key: ${JSON.stringify(c.tls.key)}`,
    );
  if (c.htpasswd)
    lines.push("auth:", "  htpasswd:", "    realm: tsrunc-test", `    path: ${JSON.stringify(c.htpasswd)}`);
  if (c.token)
    lines.push(
      "auth:",
      "  token:",
      `    realm: ${JSON.stringify(c.token.realm)}`,
      `    service: ${JSON.stringify(c.token.service)}`,
      `    issuer: ${JSON.stringify(c.token.issuer)}`,
      `    rootcertbundle: ${JSON.stringify(c.token.rootcertbundle)}`,
    );
  return `${lines.join("\n")}\n`;
}

async function waitForRegistry(
  port: number,
  tls: boolean,
  child: ChildProcess,
  deadline: number,
): Promise<void> {
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error("docker-registry exited early");
    const ok = await new Promise<boolean>((resolve) => {
      const options = { host: "127.0.0.1", port, path: "/v2/", method: "GET", rejectUnauthorized: false };
      const req = (tls ? https : http).request(options, (res) => {
        res.resume();
        resolve(true);
      });
      req.on("error", () => resolve(false));
      req.setTimeout(1000, () => req.destroy());
      req.end();
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error("docker-registry did not start listening in time");
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Starts docker-registry on a free loopback port; it is stopped when the test ends. */
export async function startRegistry(t: Test, config: RegistryConfig): Promise<RunningRegistry> {
  const confDir = await tempDir(t, "tsrunc-regconf-");
  for (let tries = 0; ; tries++) {
    const port = await freePort();
    const confPath = join(confDir, `config-${port}.yml`);
    await writeFile(confPath, registryYaml(`127.0.0.1:${port}`, config));
    const child = spawn("setpriv", ["--pdeathsig", "SIGKILL", "--", registryBinary, "serve", confPath], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    liveChildren.add(child);
    let stderr = "";
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      stderr = (stderr + d).slice(-20_000);
    });
    const exited = new Promise<void>((resolve) =>
      child.once("exit", () => {
        liveChildren.delete(child);
        resolve();
      }),
    );
    const stop = async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
        await exited;
        clearTimeout(timer);
      }
    };
    t.teardown(stop);
    try {
      await waitForRegistry(port, config.tls !== undefined, child, Date.now() + 15_000);
    } catch (err) {
      await stop();
      if (tries < 3) continue; // the port was taken in between: try another
      throw new Error(`${(err as Error).message}: ${stderr}`);
    }
    return { host: `127.0.0.1:${port}`, port, process: child, log: () => stderr, stop };
  }
}

/** A registry storage directory holding the fixture under the repository `repo` (pushed through a plain registry). */
export async function seededStorage(t: Test, fixture: Fixture, repo: string): Promise<string> {
  const rootdir = await tempDir(t, "tsrunc-regdata-");
  const reg = await startRegistry(t, { rootdir });
  await pushTag(fixture.layout, "multi", `${reg.host}/${repo}:multi`);
  await pushTag(fixture.layout, "single", `${reg.host}/${repo}:single`);
  await pushTag(fixture.layout, "multi", `${reg.host}/${repo}:docker`, dockerFormat);
  await reg.stop();
  return rootdir;
}

// ---------- certificates ----------

/** Runs openssl with space-separated arguments (the paths here come from mkdtemp: no spaces). */
async function openssl(...argv: string[]): Promise<void> {
  await execa("openssl", argv.join(" ").split(" "));
}

export interface TestCa {
  caCert: string;
  serverCert: string;
  serverKey: string;
}

/** A CA and a server certificate for 127.0.0.1/localhost signed by it, made with openssl. */
export async function makeCa(dir: string): Promise<TestCa> {
  const caKey = join(dir, "ca.key");
  const caCert = join(dir, "ca.crt");
  const serverKey = join(dir, "server.key");
  const serverCsr = join(dir, "server.csr");
  const serverCert = join(dir, "server.crt");
  const ext = join(dir, "server.ext");
  await openssl(
    `req -x509 -newkey rsa:2048 -nodes -keyout ${caKey} -out ${caCert} -days 2 -subj /CN=tsrunc-test-CA`,
    "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
  );
  await openssl(`req -newkey rsa:2048 -nodes -keyout ${serverKey} -out ${serverCsr} -subj /CN=127.0.0.1`);
  await writeFile(
    ext,
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
  );
  await openssl(
    `x509 -req -in ${serverCsr} -CA ${caCert} -CAkey ${caKey} -CAcreateserial -out ${serverCert}`,
    `-days 2 -extfile ${ext}`,
  );
  return { caCert, serverCert, serverKey };
}

// ---------- a token realm ----------

export interface TokenRealm {
  realm: string;
  service: string;
  issuer: string;
  /** The certificate bundle the registry trusts for token signatures. */
  rootcertbundle: string;
  /** Token requests seen: the scopes asked and whether credentials were right. */
  requests: Array<{ scope: string[]; user?: string; granted: boolean }>;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

/**
 * A token server on loopback: GET /token?service=…&scope=repository:NAME:ACTIONS with Basic
 * `user:password` answers a JWT (RS256, x5c = its self-signed certificate) granting the asked
 * actions; wrong credentials get 401; no credentials get a token granting nothing.
 */
export async function startTokenRealm(
  t: Test,
  dir: string,
  user: string,
  password: string,
): Promise<TokenRealm> {
  const key = join(dir, "token.key");
  const cert = join(dir, "token.crt");
  await openssl(
    `req -x509 -newkey rsa:2048 -nodes -keyout ${key} -out ${cert} -days 2 -subj /CN=tsrunc-token-issuer`,
  );
  const privateKey = createPrivateKey(await readFile(key));
  const certDer = new X509Certificate(await readFile(cert)).raw;
  const service = "tsrunc-test-registry";
  const issuer = "tsrunc-test-issuer";
  const requests: TokenRealm["requests"] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname !== "/token" || url.searchParams.get("service") !== service) {
      res.writeHead(404).end();
      return;
    }
    const scopes = url.searchParams.getAll("scope");
    const auth = req.headers.authorization;
    let who: string | undefined;
    if (auth?.startsWith("Basic ")) {
      const [u, ...p] = Buffer.from(auth.slice(6), "base64").toString().split(":");
      if (u !== user || p.join(":") !== password) {
        requests.push({ scope: scopes, user: u ?? "", granted: false });
        res.writeHead(401, { "content-type": "application/json" });
        res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "wrong user or password" }] }));
        return;
      }
      who = u;
    }
    const access =
      who === undefined
        ? []
        : scopes.flatMap((s) => {
            const m = /^repository:([^:]+):(.+)$/.exec(s);
            return m ? [{ type: "repository", name: m[1], actions: m[2]!.split(",") }] : [];
          });
    requests.push({ scope: scopes, ...(who === undefined ? {} : { user: who }), granted: access.length > 0 });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: "JWT", alg: "RS256", x5c: [certDer.toString("base64")] };
    const claims = {
      iss: issuer,
      sub: who ?? "",
      aud: service,
      exp: now + 300,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString("hex"),
      access,
    };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = sign("sha256", Buffer.from(signingInput), privateKey);
    const token = `${signingInput}.${b64url(signature)}`;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  server.unref();
  const { port } = server.address() as AddressInfo;
  return { realm: `http://127.0.0.1:${port}/token`, service, issuer, rootcertbundle: cert, requests };
}

/** An htpasswd file (bcrypt, as distribution requires) made with Apache's htpasswd. */
export async function makeHtpasswd(dir: string, user: string, password: string): Promise<string> {
  const path = join(dir, "htpasswd");
  await execa("htpasswd", ["-Bbc", path, user, password]);
  return path;
}
