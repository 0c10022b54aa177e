import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { Code } from "@tsrunc/ttrpc/status";
import t, { type Test } from "tap";
import { ContentStore } from "../content-store.js";
import { sha256Digest } from "../digest.js";
import { type BuildEntry, tarArchive } from "../testing/tar-builder.js";
import { importArchive } from "./import.js";

async function freshStore(t: Test): Promise<ContentStore> {
  const root = await mkdtemp(join(tmpdir(), "tsrunc-import-"));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  return ContentStore.open(root);
}

const layerA = tarArchive([{ name: "a", data: "A" }]);
const layerB = tarArchive([{ name: "b", data: "B" }]);
const config = (layers: Buffer[]) =>
  Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: layers.map(sha256Digest) },
    }),
  );
const hex = (b: Buffer) => sha256Digest(b).slice(7);

t.test(
  "docker-archive: legacy layout with a symlinked duplicate layer, several tags, an untagged image",
  async (t) => {
    const store = await freshStore(t);
    const c1 = config([layerA, layerB]);
    const c2 = config([layerA]);
    const entries: BuildEntry[] = [
      { name: "l1/", type: "directory" },
      { name: "l1/layer.tar", data: layerA },
      { name: "l1/VERSION", data: "1.0" },
      { name: "l1/json", data: "{}" },
      { name: "l2/layer.tar", data: layerB },
      { name: "l3/layer.tar", type: "symlink", linkname: "../l1/layer.tar" },
      { name: `${hex(c1)}.json`, data: c1 },
      { name: `${hex(c2)}.json`, data: c2 },
      {
        name: "manifest.json",
        data: JSON.stringify([
          {
            Config: `${hex(c1)}.json`,
            RepoTags: ["busybox:latest", "example.com/x/y:2"],
            Layers: ["l1/layer.tar", "l2/layer.tar"],
          },
          { Config: `${hex(c2)}.json`, RepoTags: null, Layers: ["l3/layer.tar"] },
        ]),
      },
      { name: "repositories", data: "{}" },
    ];
    const res = await importArchive(Readable.from([tarArchive(entries)]), {
      store,
      baseName: "local/untagged",
    });
    t.equal(res.format, "docker");
    t.same(
      res.images.map((i) => i.name),
      ["docker.io/library/busybox:latest", "example.com/x/y:2", "docker.io/local/untagged:latest"],
    );
    t.equal(res.images[0]!.target.digest, res.images[1]!.target.digest);
    const manifest = JSON.parse((await store.readBlob(res.images[0]!.target.digest)).toString());
    t.equal(manifest.mediaType, "application/vnd.docker.distribution.manifest.v2+json");
    t.same(
      manifest.layers.map((l: { digest: string }) => l.digest),
      [sha256Digest(layerA), sha256Digest(layerB)],
    );
    t.equal(manifest.layers[0].mediaType, "application/vnd.docker.image.rootfs.diff.tar");
    const m2 = JSON.parse((await store.readBlob(res.images[2]!.target.digest)).toString());
    t.same(m2.layers[0].digest, sha256Digest(layerA), "the symlinked layer resolves to the file it names");
    const digests = (await store.list()).map((b) => b.digest).sort();
    t.notOk(digests.includes(sha256Digest(Buffer.from("{}"))), "archive metadata files are not stored");
  },
);

t.test("failures leave the store as it was", async (t) => {
  const store = await freshStore(t);
  const c = config([layerA]);
  const cases: Array<[string, BuildEntry[], Code]> = [
    [
      "a layer that is not what the config's diff_id says",
      [
        { name: "l.tar", data: layerB },
        { name: "c.json", data: c },
        {
          name: "manifest.json",
          data: JSON.stringify([{ Config: "c.json", RepoTags: ["a:b"], Layers: ["l.tar"] }]),
        },
      ],
      Code.FailedPrecondition,
    ],
    [
      "a manifest.json naming a missing layer",
      [
        { name: "c.json", data: c },
        { name: "manifest.json", data: JSON.stringify([{ Config: "c.json", Layers: ["../../etc/passwd"] }]) },
      ],
      Code.InvalidArgument,
    ],
    ["neither format", [{ name: "hello", data: "x" }], Code.InvalidArgument],
    [
      "an OCI index naming a blob the archive lacks",
      [
        { name: "oci-layout", data: '{"imageLayoutVersion":"1.0.0"}' },
        { name: `blobs/sha256/${hex(layerA)}`, data: layerA },
        {
          name: "index.json",
          data: JSON.stringify({
            schemaVersion: 2,
            manifests: [
              { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: sha256Digest("x"), size: 1 },
            ],
          }),
        },
      ],
      Code.InvalidArgument,
    ],
    [
      "an OCI blob whose bytes are not its name's digest",
      [
        { name: "oci-layout", data: '{"imageLayoutVersion":"1.0.0"}' },
        { name: `blobs/sha256/${hex(layerA)}`, data: layerB },
      ],
      Code.FailedPrecondition,
    ],
    ["a truncated archive", [{ name: "x", data: "y".repeat(2000) }], Code.InvalidArgument],
  ];
  for (const [what, entries, code] of cases) {
    let tar = tarArchive(entries);
    if (what === "a truncated archive") tar = tar.subarray(0, 1024);
    await t.rejects(importArchive(Readable.from([tar]), { store }), { code }, what);
    t.same(await store.list(), [], `${what}: nothing stored`);
    t.same(await readdir(join(store.root, "ingest")), [], `${what}: no ingest`);
  }
});
