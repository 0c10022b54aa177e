// pull against a real docker-registry (distribution 2.8) on a loopback port, plain HTTP.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Code, isCode } from "@tsrunc/ttrpc/status";
import t, { type Test } from "tap";
import { ContentStore } from "../content-store.js";
import { formatPlatform, hostPlatform } from "./platforms.js";
import { type PullProgress, pull } from "./pull.js";
import { RegistryClient } from "./registry-client.js";
import {
  buildFixture,
  dockerFormat,
  type Fixture,
  pushTag,
  startRegistry,
  tempDir,
} from "./test-registry.js";

const bigLayer = 32 * 1024 * 1024;
const started = Date.now();
const work = await tempDir(t);
const fixture: Fixture = await buildFixture(work, bigLayer);
const registry = await startRegistry(t, { rootdir: join(work, "registry") });
const repo = `${registry.host}/tsrunc/test`;
await pushTag(fixture.layout, "multi", `${repo}:multi`);
await pushTag(fixture.layout, "single", `${repo}:single`);
await pushTag(fixture.layout, "multi", `${repo}:docker`, dockerFormat);
t.comment(`fixture built and pushed in ${Date.now() - started} ms`);

async function freshStore(t: Test): Promise<ContentStore> {
  return ContentStore.open(await tempDir(t, "tsrunc-cs-"));
}

const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

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

/** Every blob in the store matches its digest and the fixture's bytes. */
async function checkStored(t: Test, store: ContentStore, digests: string[]): Promise<void> {
  for (const d of digests) {
    const data = await readFile(store.blobPath(d));
    t.equal(sha256(data), d, `stored ${d.slice(0, 19)} matches its digest`);
    t.ok(fixture.blobs.get(d)?.equals(data), `stored ${d.slice(0, 19)} is the pushed blob`);
  }
}

t.test("pulls the host's platform out of a multi-platform index", async (t) => {
  t.equal(formatPlatform(hostPlatform()), "linux/amd64", "this machine is linux/amd64");
  const store = await freshStore(t);
  const events: PullProgress[] = [];
  const begin = Date.now();
  const result = await pull(`${repo}:multi`, { store, plainHttp: true, onProgress: (e) => events.push(e) });
  t.comment(`pull took ${Date.now() - begin} ms`);
  const amd64 = fixture.multi.images[0]!;
  t.equal(result.name, `${repo}:multi`);
  t.same(result.target, {
    mediaType: fixture.multi.index.mediaType,
    digest: fixture.multi.index.digest,
    size: fixture.multi.index.size,
  });
  t.equal(result.manifestDescriptor.digest, amd64.manifest.digest);
  t.same(result.platform, { os: "linux", architecture: "amd64" });
  t.equal(result.index?.manifests.length, 3);
  t.same(result.manifest.layers, amd64.layers);
  t.equal(result.config.architecture, "amd64");
  const want = [
    fixture.multi.index.digest,
    amd64.manifest.digest,
    amd64.config.digest,
    ...amd64.layers.map((l) => l.digest),
  ];
  await checkStored(t, store, want);
  t.same(
    (await store.list()).map((b) => b.digest).sort(),
    [...want].sort(),
    "nothing of the other platforms",
  );
  t.same(await store.listIngests(), [], "no ingest left");
  const layerDone = events.filter((e) => e.kind === "layer" && e.status === "done");
  t.same(
    layerDone.map((e) => e.digest).sort(),
    amd64.layers.map((l) => l.digest).sort(),
    "a done event per layer",
  );
  t.ok(
    events.every((e) => e.done <= e.total),
    "done never exceeds total",
  );

  // A second pull finds everything in the store and fetches no blob.
  const events2: PullProgress[] = [];
  const again = await pull(`${repo}:multi`, { store, plainHttp: true, onProgress: (e) => events2.push(e) });
  t.equal(again.transferred, 0, "nothing transferred the second time");
  t.ok(
    events2.filter((e) => e.kind === "layer").every((e) => e.status === "waiting" || e.status === "exists"),
  );
});

t.test("a Docker manifest list of schema 2 manifests (skopeo --format v2s2)", async (t) => {
  const store = await freshStore(t);
  const r = await pull(`${repo}:docker`, { store, plainHttp: true });
  const amd64 = fixture.multi.images[0]!;
  t.equal(r.target.mediaType, "application/vnd.docker.distribution.manifest.list.v2+json");
  t.equal(r.manifestDescriptor.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
  t.same(r.platform, { architecture: "amd64", os: "linux" });
  t.equal(r.config.architecture, "amd64");
  t.same(
    r.manifest.layers.map((l) => [l.mediaType, l.digest]),
    amd64.layers.map((l) => ["application/vnd.docker.image.rootfs.diff.tar.gzip", l.digest]),
    "the amd64 layers, as Docker layers",
  );
  await checkStored(
    t,
    store,
    amd64.layers.map((l) => l.digest),
  );
  for (const b of await store.list()) t.equal(sha256(await readFile(store.blobPath(b.digest))), b.digest);
  t.equal((await store.list()).length, 2 + 1 + amd64.layers.length, "list, manifest, config, layers");
  const arm = await pull(`${repo}:docker`, {
    store: await freshStore(t),
    plainHttp: true,
    platform: "linux/arm/v7",
  });
  t.equal(arm.config.architecture, "arm");
  t.same(
    arm.manifest.layers.map((l) => l.digest),
    fixture.multi.images[2]!.layers.map((l) => l.digest),
  );
});

t.test("picks the asked platform, with arm64/v8 and arm/v7 normalized", async (t) => {
  for (const [spec, i] of [
    ["linux/arm64", 1],
    ["linux/arm64/v8", 1],
    ["linux/aarch64", 1],
    ["linux/arm/v7", 2],
    ["linux/arm", 2],
  ] as const) {
    const store = await freshStore(t);
    const image = fixture.multi.images[i]!;
    const r = await pull(`${repo}:multi`, { store, plainHttp: true, platform: spec });
    t.equal(r.manifestDescriptor.digest, image.manifest.digest, `${spec} → ${image.platform}`);
    t.equal(r.config.architecture, image.platform.split("/")[1]);
    await checkStored(t, store, [image.config.digest, ...image.layers.map((l) => l.digest)]);
  }
  const store = await freshStore(t);
  const msg = await rejectsCode(
    t,
    pull(`${repo}:multi`, { store, plainHttp: true, platform: "linux/s390x" }),
    Code.NotFound,
    "a platform the index lacks",
  );
  t.match(msg, /linux\/s390x/);
  t.same(await store.list(), [], "nothing stored");
  await rejectsCode(
    t,
    pull(`${repo}:multi`, { store, platform: "linux/amd64/v2/x", plainHttp: true }),
    Code.InvalidArgument,
    "a malformed platform",
  );
});

t.test(
  "a single manifest by tag and by digest; missing tags, repositories and digests are NotFound",
  async (t) => {
    const store = await freshStore(t);
    const r = await pull(`${repo}:single`, { store, plainHttp: true, concurrency: 1 });
    t.equal(r.target.digest, fixture.single.manifest.digest);
    t.equal(r.index, undefined);
    t.same(r.platform, { os: "linux", architecture: "amd64" });
    await checkStored(t, store, [
      fixture.single.manifest.digest,
      fixture.single.config.digest,
      ...fixture.single.layers.map((l) => l.digest),
    ]);

    const byDigest = await pull(`${repo}@${fixture.multi.images[1]!.manifest.digest}`, {
      store: await freshStore(t),
      plainHttp: true,
    });
    t.equal(
      byDigest.target.digest,
      fixture.multi.images[1]!.manifest.digest,
      "a digest reference pulls that manifest",
    );
    t.equal(
      byDigest.name,
      `${repo}@${fixture.multi.images[1]!.manifest.digest}`,
      "named as containerd names it",
    );

    const msg = await rejectsCode(
      t,
      pull(`${repo}:nope`, { store, plainHttp: true }),
      Code.NotFound,
      "unknown tag",
    );
    t.match(msg, /MANIFEST_UNKNOWN|manifest unknown/, "the registry's message");
    await rejectsCode(
      t,
      pull(`${registry.host}/no/such:repo`, { store, plainHttp: true }),
      Code.NotFound,
      "unknown repository",
    );
    await rejectsCode(
      t,
      pull(`${repo}@sha256:${"0".repeat(64)}`, { store, plainHttp: true }),
      Code.NotFound,
      "unknown digest",
    );
    const client = new RegistryClient({ plainHttp: true });
    t.teardown(() => client.close());
    const { parseReference } = await import("./reference.js");
    await rejectsCode(
      t,
      client.fetchBlob(parseReference(`${repo}:x`), {
        mediaType: "x",
        digest: `sha256:${"1".repeat(64)}`,
        size: 1,
      }),
      Code.NotFound,
      "unknown blob",
    );
    await rejectsCode(
      t,
      pull(`127.0.0.1:1/a:b`, { store, plainHttp: true }),
      Code.Unavailable,
      "nothing listening",
    );
  },
);

t.test("a pull aborted mid-layer resumes from the ingest with a Range request", async (t) => {
  const store = await freshStore(t);
  const big = fixture.single.layers.at(-1)!;
  const controller = new AbortController();
  await rejectsCode(
    t,
    pull(`${repo}:single`, {
      store,
      plainHttp: true,
      signal: controller.signal,
      onProgress: (e) => {
        if (e.digest === big.digest && e.done > 4 * 1024 * 1024) controller.abort();
      },
    }),
    Code.Canceled,
    "aborted",
  );
  t.notOk(await store.has(big.digest), "the big layer is not committed");
  t.notOk(await store.has(fixture.single.manifest.digest), "nor the manifest");
  const ingests = await store.listIngests();
  const partial = ingests.find((i) => i.expected.digest === big.digest);
  t.ok(
    partial && partial.offset > 0 && partial.offset < big.size,
    `an ingest of ${partial?.offset} bytes is left`,
  );

  let resumedFrom = -1;
  const r = await pull(`${repo}:single`, {
    store,
    plainHttp: true,
    onProgress: (e) => {
      if (e.digest === big.digest && e.status === "downloading" && resumedFrom < 0)
        resumedFrom = e.resumedFrom ?? 0;
    },
  });
  t.equal(resumedFrom, partial?.offset, "the second pull resumed where the first stopped");
  t.ok(
    r.transferred <= big.size - (partial?.offset ?? 0) + 10_000,
    `only the rest was transferred (${r.transferred} bytes)`,
  );
  await checkStored(t, store, [big.digest, fixture.single.manifest.digest]);
  t.same(await store.listIngests(), [], "no ingest left");
});

t.test("a pulling process SIGKILLed mid-layer: the next pull resumes and completes", async (t) => {
  const root = await tempDir(t, "tsrunc-cs-");
  const big = fixture.single.layers.at(-1)!;
  const dir = fileURLToPath(new URL(".", import.meta.url));
  const script = `
    const { ContentStore } = await import(${JSON.stringify(join(dir, "..", "content-store.js"))});
    const { pull } = await import(${JSON.stringify(join(dir, "pull.js"))});
    const store = await ContentStore.open(${JSON.stringify(root)});
    await pull(${JSON.stringify(`${repo}:single`)}, { store, plainHttp: true, onProgress: (e) => {
      if (e.digest === ${JSON.stringify(big.digest)} && e.done > 8 * 1024 * 1024) {
        process.stdout.write("mid\\n");
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30000); // hold still until killed
      }
    } });
    process.stdout.write("finished\\n");
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once("exit", (_c, s) => resolve(s)));
  let out = "";
  await new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      if (out.includes("mid")) resolve();
    });
    child.once("exit", () => reject(new Error(`child exited before the middle: ${out}`)));
  });
  child.kill("SIGKILL");
  t.equal(await exited, "SIGKILL");
  const store = await ContentStore.open(root);
  const partial = (await store.listIngests()).find((i) => i.expected.digest === big.digest);
  t.ok(
    partial && partial.offset > 0 && partial.offset < big.size,
    `the killed pull left ${partial?.offset} bytes`,
  );
  let resumedFrom = -1;
  await pull(`${repo}:single`, {
    store,
    plainHttp: true,
    onProgress: (e) => {
      if (e.digest === big.digest && e.status === "downloading" && resumedFrom < 0)
        resumedFrom = e.resumedFrom ?? 0;
    },
  });
  t.equal(resumedFrom, partial?.offset, "resumed from the killed pull's ingest");
  await checkStored(t, store, [big.digest, fixture.single.manifest.digest, fixture.single.config.digest]);
  t.same(await store.listIngests(), [], "no ingest left");
});

t.test("two pulls of the same image at once share the blobs", async (t) => {
  const store = await freshStore(t);
  const [a, b] = await Promise.all([
    pull(`${repo}:single`, { store, plainHttp: true }),
    pull(`${repo}:single`, { store, plainHttp: true }),
  ]);
  t.equal(a.target.digest, b.target.digest);
  await checkStored(t, store, [
    fixture.single.manifest.digest,
    ...fixture.single.layers.map((l) => l.digest),
  ]);
  t.ok(a.transferred + b.transferred < 2 * fixture.single.layers.at(-1)!.size, "the big layer came once");
  t.same(await store.listIngests(), []);
});
