// exportArchive's refusals that need no real image: a record whose target is not an index or a
// manifest is the caller's mistake (InvalidArgument), never an internal error. Found by the
// daemon-messages fuzz campaign (Images.Create with a layer as target, then Export: Unknown).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { Code, isCode } from "@tsrunc/ttrpc/status";
import t from "tap";
import { ContentStore } from "../content-store.js";
import { sha256Digest } from "../digest.js";
import { exportArchive } from "./export.js";

const sink = () =>
  new Writable({
    write(_chunk, _enc, cb) {
      cb();
    },
  });

t.test("a target that is not an index or a manifest is InvalidArgument", async (t) => {
  const root = await mkdtemp(join(tmpdir(), "tsrunc-export-"));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const store = await ContentStore.open(root);
  for (const [what, body] of [
    ["a tar layer", "bin/\0\0\0\0\0\0 not json"],
    ["a JSON scalar", "null"],
    ["a JSON array", "[1,2]"],
  ] as const) {
    const data = Buffer.from(body);
    const desc = { digest: sha256Digest(data), size: data.length };
    await store.writeBlob(desc, data);
    try {
      await exportArchive(
        [
          {
            name: "x.local/img:1",
            target: { mediaType: "application/vnd.oci.image.manifest.v1+json", ...desc },
          },
        ],
        sink(),
        { store },
      );
      t.fail(`${what}: exported`);
    } catch (err) {
      t.ok(isCode(err, Code.InvalidArgument), `${what}: ${String(err)}`);
    }
  }
});
