// pull against small fake registries that misbehave on purpose: wrong or too many bytes, a manifest
// that does not match its digest, error statuses, redirects to another host, Range ignored, a
// connection cut mid-blob, HEAD refused, schema 1, hostile descriptors.
import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Code, isCode } from "@tsrunc/ttrpc/status";
import t, { type Test } from "tap";
import { ContentStore, type Descriptor } from "../content-store.js";
import { pull } from "./pull.js";
import { tempDir } from "./test-registry.js";

const sha256 = (b: Buffer | string) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

interface Image {
  manifest: Buffer;
  manifestDesc: Descriptor;
  config: Descriptor;
  layers: Descriptor[];
  blobs: Map<string, Buffer>;
}

function makeImage(layerSizes: number[], tweak?: (m: Record<string, unknown>) => void): Image {
  const blobs = new Map<string, Buffer>();
  const add = (data: Buffer, mediaType: string): Descriptor => {
    const digest = sha256(data);
    blobs.set(digest, data);
    return { mediaType, digest, size: data.length };
  };
  const layers = layerSizes.map((n) => add(randomBytes(n), "application/vnd.oci.image.layer.v1.tar"));
  const config = add(
    Buffer.from(
      JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }),
    ),
    "application/vnd.oci.image.config.v1+json",
  );
  const m: Record<string, unknown> = {
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config,
    layers,
  };
  tweak?.(m);
  const manifest = Buffer.from(JSON.stringify(m));
  const manifestDesc = {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: sha256(manifest),
    size: manifest.length,
  };
  return { manifest, manifestDesc, config, layers, blobs };
}

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

/** A server on loopback whose handler is given; every request is recorded. */
async function serve(t: Test, handler: http.RequestListener): Promise<{ host: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

interface FakeOptions {
  /** Bytes served for a blob instead of its own. */
  serveBlob?: (digest: string, data: Buffer, req: http.IncomingMessage, res: http.ServerResponse) => boolean;
  /** Answer for every /v2/ request before anything else (return true when handled). */
  before?: (req: http.IncomingMessage, res: http.ServerResponse) => boolean;
  headAllowed?: boolean;
  manifestBody?: Buffer;
}

/** A registry serving `image` as repository "x/y", tag "t", honouring Range unless told otherwise. */
async function fakeRegistry(t: Test, image: Image, o: FakeOptions = {}) {
  return serve(t, (req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (o.before?.(req, res)) return;
    const m = /^\/v2\/x\/y\/(manifests|blobs)\/(.+)$/.exec(url.pathname);
    if (m?.[1] === "manifests" && (m[2] === "t" || m[2] === image.manifestDesc.digest)) {
      if (req.method === "HEAD" && o.headAllowed === false) {
        res.writeHead(405).end();
        return;
      }
      const body = o.manifestBody ?? image.manifest;
      res.writeHead(200, {
        "content-type": image.manifestDesc.mediaType,
        "content-length": body.length,
        "docker-content-digest": image.manifestDesc.digest,
      });
      res.end(req.method === "HEAD" ? undefined : body);
      return;
    }
    const data = m?.[1] === "blobs" ? image.blobs.get(m[2]!) : undefined;
    if (data !== undefined) {
      if (o.serveBlob?.(m![2]!, data, req, res)) return;
      const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ""));
      if (range) {
        const start = Number(range[1]);
        res.writeHead(206, {
          "content-length": data.length - start,
          "content-range": `bytes ${start}-${data.length - 1}/${data.length}`,
        });
        res.end(data.subarray(start));
        return;
      }
      res.writeHead(200, { "content-length": data.length });
      res.end(data);
      return;
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        errors: [{ code: "NAME_UNKNOWN", message: "repository name not known to registry" }],
      }),
    );
  });
}

async function freshStore(t: Test): Promise<ContentStore> {
  return ContentStore.open(await tempDir(t, "tsrunc-cs-"));
}

async function rejectsCode(t: Test, p: Promise<unknown>, code: Code, name: string): Promise<string> {
  try {
    await p;
    t.fail(`${name}: resolved`);
    return "";
  } catch (err) {
    t.ok(isCode(err, code), `${name}: ${Code[code]} (${String(err)})`);
    return String(err);
  }
}

async function nothingBut(t: Test, store: ContentStore, allowed: string[], name: string): Promise<void> {
  const stored = (await store.list()).map((b) => b.digest);
  t.same(
    stored.filter((d) => !allowed.includes(d)),
    [],
    `${name}: nothing else committed`,
  );
  t.same(await store.listIngests(), [], `${name}: no ingest left`);
}

t.test("a layer whose bytes do not match its digest is refused, nothing committed", async (t) => {
  const image = makeImage([300_000, 1000]);
  const bad = image.layers[0]!;
  const reg = await fakeRegistry(t, image, {
    serveBlob: (digest, data, _req, res) => {
      if (digest !== bad.digest) return false;
      const wrong = Buffer.from(data);
      wrong.writeUInt8(wrong.readUInt8(wrong.length - 1) ^ 0xff, wrong.length - 1);
      res.writeHead(200, { "content-length": wrong.length });
      res.end(wrong);
      return true;
    },
  });
  const store = await freshStore(t);
  const msg = await rejectsCode(
    t,
    pull(`${reg.host}/x/y:t`, { store, plainHttp: true }),
    Code.FailedPrecondition,
    "wrong digest",
  );
  t.match(msg, new RegExp(`layer ${bad.digest}.*digest`), "names the layer");
  t.notOk(await store.has(bad.digest), "the bad layer is not in the store");
  t.notOk(await store.has(image.manifestDesc.digest), "nor the manifest");
  await nothingBut(t, store, [image.config.digest, image.layers[1]!.digest], "wrong digest");

  // The registry is fixed: the same store pulls cleanly (the bad ingest was discarded, not resumed).
  const good = await fakeRegistry(t, image);
  const r = await pull(`${good.host}/x/y:t`, { store, plainHttp: true });
  t.equal(r.target.digest, image.manifestDesc.digest);
  t.ok(await store.has(bad.digest));
});

t.test("a layer longer than its descriptor is refused", async (t) => {
  const image = makeImage([50_000]);
  const layer = image.layers[0]!;
  const reg = await fakeRegistry(t, image, {
    serveBlob: (digest, data, _req, res) => {
      if (digest !== layer.digest) return false;
      const more = Buffer.concat([data, Buffer.from("trailing junk")]);
      res.writeHead(200, { "content-length": more.length });
      res.end(more);
      return true;
    },
  });
  const store = await freshStore(t);
  await rejectsCode(
    t,
    pull(`${reg.host}/x/y:t`, { store, plainHttp: true }),
    Code.FailedPrecondition,
    "too many bytes",
  );
  await nothingBut(t, store, [image.config.digest], "too many bytes");
});

t.test("a manifest that does not match the digest the registry gave", async (t) => {
  const image = makeImage([10]);
  const reg = await fakeRegistry(t, image, {
    manifestBody: Buffer.from(image.manifest.toString().replace('"schemaVersion":2', '"schemaVersion":3')),
  });
  const store = await freshStore(t);
  await rejectsCode(
    t,
    pull(`${reg.host}/x/y:t`, { store, plainHttp: true }),
    Code.DataLoss,
    "manifest digest mismatch",
  );
  await nothingBut(t, store, [], "manifest digest mismatch");
});

t.test("error statuses map to codes and carry the registry's message", async (t) => {
  const image = makeImage([10]);
  const cases: Array<[number, Record<string, string>, string, Code]> = [
    [
      403,
      {},
      JSON.stringify({ errors: [{ code: "DENIED", message: "requested access to the resource is denied" }] }),
      Code.PermissionDenied,
    ],
    [
      401,
      {},
      JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "authentication required" }] }),
      Code.Unauthenticated,
    ],
    [401, { "www-authenticate": 'Negotiate realm="x"' }, "", Code.Unauthenticated],
    [
      404,
      {},
      JSON.stringify({
        errors: [{ code: "NAME_UNKNOWN", message: "repository name not known to registry" }],
      }),
      Code.NotFound,
    ],
    [500, {}, "internal trouble", Code.Unavailable],
    [503, {}, JSON.stringify({ errors: [{ code: "UNAVAILABLE", message: "try later" }] }), Code.Unavailable],
    [
      429,
      {},
      JSON.stringify({ errors: [{ code: "TOOMANYREQUESTS", message: "slow down" }] }),
      Code.Unavailable,
    ],
    [418, {}, "teapot", Code.Unknown],
  ];
  for (const [status, headers, body, code] of cases) {
    const reg = await fakeRegistry(t, image, {
      before: (_req, res) => {
        res.writeHead(status, { "content-type": "application/json", ...headers });
        res.end(body);
        return true;
      },
    });
    const msg = await rejectsCode(
      t,
      pull(`${reg.host}/x/y:t`, { store: await freshStore(t), plainHttp: true }),
      code,
      `${status}`,
    );
    const text = body.startsWith("{") ? (JSON.parse(body).errors[0].message as string) : body;
    if (text) t.match(msg, text, `${status}: the registry's message`);
  }
  // A 5xx on a layer is retried; one that persists fails the pull with Unavailable.
  const layer = image.layers[0]!;
  const flaky = await fakeRegistry(t, image, {
    serveBlob: (digest, _data, _req, res) => {
      if (digest !== layer.digest) return false;
      res.writeHead(502).end("bad gateway");
      return true;
    },
  });
  const store = await freshStore(t);
  await rejectsCode(
    t,
    pull(`${flaky.host}/x/y:t`, { store, plainHttp: true, retries: 2 }),
    Code.Unavailable,
    "a persistent 502",
  );
  t.equal(flaky.seen.filter((s) => s.url.endsWith(layer.digest)).length, 3, "tried 1 + 2 retries");
  await nothingBut(t, store, [image.config.digest], "a persistent 502");
});

t.test("a blob redirected to another host: followed, without the Authorization header", async (t) => {
  const image = makeImage([100_000]);
  const layer = image.layers[0]!;
  const storage = await serve(t, (req, res) => {
    const data = image.blobs.get(String(req.url).slice(1));
    if (data === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-length": data.length }).end(data);
  });
  const auth = `Basic ${Buffer.from("u:p").toString("base64")}`;
  const reg = await fakeRegistry(t, image, {
    before: (req, res) => {
      if (req.headers.authorization === auth) return false;
      res.writeHead(401, { "www-authenticate": 'Basic realm="fake"' }).end();
      return true;
    },
    serveBlob: (digest, _data, _req, res) => {
      if (digest !== layer.digest) return false;
      res.writeHead(307, { location: `http://${storage.host}/${digest}` }).end();
      return true;
    },
  });
  const store = await freshStore(t);
  const r = await pull(`${reg.host}/x/y:t`, {
    store,
    plainHttp: true,
    credentials: { username: "u", password: "p" },
  });
  t.equal(r.target.digest, image.manifestDesc.digest);
  t.ok(await store.has(layer.digest), "the redirected layer is stored");
  t.equal(storage.seen.length, 1, "the storage host was asked once");
  t.equal(storage.seen[0]?.headers.authorization, undefined, "and got no Authorization header");
});

t.test("Range ignored by the registry: the stored prefix is skipped, the pull completes", async (t) => {
  const image = makeImage([400_000]);
  const layer = image.layers[0]!;
  const reg = await fakeRegistry(t, image, {
    serveBlob: (_digest, data, _req, res) => {
      res.writeHead(200, { "content-length": data.length }).end(data);
      return true;
    },
  });
  const store = await freshStore(t);
  // An earlier pull left 150,000 bytes in the ingest.
  const w = await store.writer(`layer-${layer.digest}`, layer);
  await w.write(image.blobs.get(layer.digest)!.subarray(0, 150_000));
  await w.commit().catch(() => {});
  let resumedFrom = -1;
  const r = await pull(`${reg.host}/x/y:t`, {
    store,
    plainHttp: true,
    onProgress: (e) => {
      if (e.digest === layer.digest && e.status === "downloading" && resumedFrom < 0)
        resumedFrom = e.resumedFrom ?? 0;
    },
  });
  t.equal(resumedFrom, 150_000, "resumed from the ingest");
  t.ok(
    reg.seen.some((s) => s.headers.range === "bytes=150000-"),
    "asked for a Range",
  );
  t.ok(r.transferred >= layer.size, "the registry sent the whole blob");
  t.ok(await store.has(layer.digest));
  t.same(await store.listIngests(), []);
});

t.test("a connection cut mid-blob is retried from where it stopped", async (t) => {
  const image = makeImage([1_000_000]);
  const layer = image.layers[0]!;
  let cut = false;
  const reg = await fakeRegistry(t, image, {
    serveBlob: (digest, data, req, res) => {
      if (digest !== layer.digest || cut) return false;
      cut = true;
      res.writeHead(200, { "content-length": data.length });
      res.write(data.subarray(0, 300_000), () => setTimeout(() => req.socket.destroy(), 50));
      return true;
    },
  });
  const store = await freshStore(t);
  const r = await pull(`${reg.host}/x/y:t`, { store, plainHttp: true });
  t.equal(r.target.digest, image.manifestDesc.digest);
  const asks = reg.seen.filter((s) => s.url.endsWith(layer.digest));
  t.equal(asks.length, 2, "asked twice");
  t.match(String(asks[1]?.headers.range), /^bytes=\d+-$/, `the retry asked for ${asks[1]?.headers.range}`);
  t.ok(r.transferred < layer.size + 300_000, "the retry did not start over");
  t.ok(await store.has(layer.digest));
});

t.test("HEAD refused: resolved with GET; schema 1 and hostile descriptors refused", async (t) => {
  const image = makeImage([10]);
  const reg = await fakeRegistry(t, image, { headAllowed: false });
  const r = await pull(`${reg.host}/x/y:t`, { store: await freshStore(t), plainHttp: true });
  t.equal(r.target.digest, image.manifestDesc.digest, "resolved by GET");

  const schema1 = Buffer.from(JSON.stringify({ schemaVersion: 1, name: "x/y", tag: "t", fsLayers: [] }));
  const s1 = await serve(t, (req, res) => {
    res.writeHead(200, {
      "content-type": "application/vnd.docker.distribution.manifest.v1+prettyjws",
      "content-length": schema1.length,
      "docker-content-digest": sha256(schema1),
    });
    res.end(req.method === "HEAD" ? undefined : schema1);
  });
  await rejectsCode(
    t,
    pull(`${s1.host}/x/y:t`, { store: await freshStore(t), plainHttp: true }),
    Code.Unimplemented,
    "schema 1",
  );

  const hostile = makeImage([10], (m) => {
    (m.layers as Descriptor[])[0]!.digest = "sha256:../../../../etc/passwd";
  });
  const h = await fakeRegistry(t, hostile);
  const store = await freshStore(t);
  await rejectsCode(
    t,
    pull(`${h.host}/x/y:t`, { store, plainHttp: true }),
    Code.InvalidArgument,
    "a path in a layer digest",
  );
  await nothingBut(t, store, [], "hostile descriptor");
});
