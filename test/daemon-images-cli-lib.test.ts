// @tsrunc/client's images and snapshots APIs against a live tsruncd and a real docker-registry
// serving an image built by umoci (test/helpers/app-image.ts): pull with a progress callback and
// as an async iterable, import from a Readable, export to a Writable, config with the resolved
// user, snapshots prepare/mounts/stat/list/remove, the codes of failures; and tsctl's progress
// display, drawn only on a terminal (node-pty).

import { createReadStream, readFileSync } from "node:fs";
import { Writable } from "node:stream";
import { connect, type PullProgress, type TsruncClient } from "@tsrunc/client";
import { Code } from "@tsrunc/ttrpc";
import pty from "node-pty";
import t from "tap";
import { type AppImage, appImage } from "./helpers/app-image.js";
import { type DaemonEnv, daemonEnv, TSCTL } from "./helpers/daemon.js";

t.setTimeout(300_000);

const img: AppImage = await appImage(t);
const d: DaemonEnv = await daemonEnv(t);
await d.start();
const client: TsruncClient = await connect({ address: d.address, namespace: d.namespace });
t.teardown(() => client.close());

t.test("pull: progress through a callback, then as an async iterable", async (t) => {
  const seen: PullProgress[] = [];
  const image = await client.images.pull(
    { ref: img.ref, plainHttp: true },
    { onProgress: (p) => seen.push(p) },
  );
  t.equal(image.name, img.ref);
  t.match(image.target.digest, /^sha256:[0-9a-f]{64}$/);
  const statuses = new Set(seen.map((p) => p.status));
  for (const s of ["resolving", "resolved", "complete"]) t.ok(statuses.has(s), `a "${s}" message`);
  t.ok(
    seen.some((p) => p.status === "done" && /layer/.test(p.mediaType) && p.total > 0),
    "layers reported done with their size",
  );
  t.equal(seen.at(-1)?.status, "complete", "complete comes last");
  t.equal(seen.at(-1)?.image?.name, img.ref);

  const again: string[] = [];
  for await (const p of client.images.pullProgress({ ref: img.ref, plainHttp: true })) again.push(p.status);
  t.equal(again.at(-1), "complete");
  t.notOk(again.includes("downloading"), "nothing downloaded the second time");
  t.same(
    (await client.images.list()).map((i) => i.name),
    [img.ref],
  );
  t.equal((await client.images.get(img.ref)).target.digest, image.target.digest);
});

t.test("config: the image's config, chain id and resolved user", async (t) => {
  const c = await client.images.config({ name: img.ref });
  t.same(c.config.config?.Entrypoint, ["/bin/entry"]);
  t.equal(c.config.config?.WorkingDir, "/srv/work");
  t.match(c.chainId, /^sha256:[0-9a-f]{64}$/);
  t.equal(c.uid, 1000);
  t.equal(c.gid, 1000);
  t.ok(c.additionalGids.includes(2000), `app is in group extra: ${c.additionalGids}`);
  const root = await client.images.config({ name: img.ref, user: "0:2000" });
  t.same([root.uid, root.gid], [0, 2000]);
  await t.rejects(
    client.images.config({ name: img.ref, user: "ghost" }),
    { code: Code.NotFound },
    "unknown user",
  );
  await t.rejects(client.images.get("nope.test/none:1"), { code: Code.NotFound });
  await t.rejects(client.images.config({ name: "nope.test/none:1" }), { code: Code.NotFound });
});

t.test("snapshots: prepare on the chain id, mounts, stat, list, remove", async (t) => {
  const { chainId } = await client.images.config({ name: img.ref });
  const mounts = await client.snapshots.prepare({ key: "lib-snap", parent: chainId });
  t.equal(mounts.length, 1);
  t.match(mounts[0], { type: /overlay|bind/ });
  t.same(await client.snapshots.mounts("lib-snap"), mounts);
  const info = await client.snapshots.stat("lib-snap");
  t.equal(info.parent, chainId);
  t.equal(info.kind, 2, "ACTIVE");
  t.ok((await client.snapshots.list()).some((s) => s.name === "lib-snap"));
  await t.rejects(client.snapshots.prepare({ key: "lib-snap", parent: chainId }), {
    code: Code.AlreadyExists,
  });
  await client.snapshots.remove("lib-snap");
  t.equal(await client.snapshots.removeIfExists("lib-snap"), false, "gone: removeIfExists says so");
  await t.rejects(client.snapshots.mounts("lib-snap"), { code: Code.NotFound });
});

t.test("import from a Readable, export to a Writable", async (t) => {
  let sent = 0;
  const images = await client.images.import(
    createReadStream(img.ociArchive),
    {},
    {
      onBytes: (n) => {
        sent = n;
      },
    },
  );
  t.same(
    images.map((i) => i.name),
    ["tsrunc.test/oci:1"],
  );
  t.equal(sent, readFileSync(img.ociArchive).length, "every byte went out");
  const named = await client.images.import(createReadStream(img.dockerArchive), {
    baseName: "ignored.test/x",
  });
  t.same(
    named.map((i) => i.name),
    ["tsrunc.test/docker:1"],
    "the archive's own name wins",
  );

  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(c, _e, cb) {
      chunks.push(c as Buffer);
      cb();
    },
  });
  await client.images.export(["tsrunc.test/oci:1"], sink);
  const tar = Buffer.concat(chunks);
  t.ok(tar.length > 500_000, "busybox is in it");
  t.ok(tar.includes("oci-layout") && tar.includes("index.json"), "an OCI layout");

  await t.rejects(
    client.images.import([Buffer.from("this is not a tar archive, not even close ".repeat(40))]),
    { code: Code.InvalidArgument },
    "garbage is InvalidArgument",
  );
  const failing = (async function* () {
    yield Buffer.alloc(1024);
    throw new Error("disk gone");
  })();
  await t.rejects(
    client.images.import(failing),
    /disk gone/,
    "a failing source fails the import with its error",
  );
  await t.rejects(client.images.export(["nope.test/none:1"], new Writable({ write: (_c, _e, cb) => cb() })), {
    code: Code.NotFound,
  });
});

t.test("tsctl images pull draws progress on a terminal", async (t) => {
  await client.images.delete(img.ref);
  await client.images.prune();
  const env: Record<string, string> = { ...d.env, TERM: "xterm" };
  const term = pty.spawn(
    process.execPath,
    [TSCTL, "--address", d.address, "-n", d.namespace, "images", "pull", "--plain-http", img.ref],
    { cols: 120, rows: 30, env },
  );
  let out = "";
  term.onData((x) => {
    out += x;
  });
  const code = await new Promise<number>((res) => term.onExit((e) => res(e.exitCode)));
  t.equal(code, 0, out);
  t.match(out, /layer-[0-9a-f]{12}/, "a bar per layer");
  t.match(out, /total/, "and a total");
  t.match(out, new RegExp(`${img.ref.replace(/[.]/g, "\\.")}: sha256:[0-9a-f]{64}`), "the image, at the end");
});

t.test("the end: nothing left", async (t) => {
  await client.close();
  await d.finish(t);
});
