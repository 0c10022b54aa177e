import t from "tap";
import { UsageError } from "./args.js";
import { parseCredentials } from "./images.js";
import { formatBytes } from "./output.js";
import { mediaKind, progressDisplay, wantsDisplay } from "./progress.js";

t.test("--user USER:PASSWORD", async (t) => {
  t.same(parseCredentials("me:se:cret"), { username: "me", password: "se:cret" });
  t.same(parseCredentials("me:"), { username: "me", password: "" });
  t.throws(() => parseCredentials("me"), UsageError);
  t.throws(() => parseCredentials(":pw"), UsageError);
});

t.test("sizes and blob kinds as the display prints them", async (t) => {
  t.equal(formatBytes(0), "0 B");
  t.equal(formatBytes(1023), "1023 B");
  t.equal(formatBytes(1536), "1.5 KiB");
  t.equal(formatBytes(200 * 1024 * 1024), "200.0 MiB");
  t.equal(mediaKind("application/vnd.oci.image.layer.v1.tar+gzip"), "layer");
  t.equal(mediaKind("application/vnd.docker.image.rootfs.diff.tar.gzip"), "layer");
  t.equal(mediaKind("application/vnd.oci.image.index.v1+json"), "index");
  t.equal(mediaKind("application/vnd.docker.distribution.manifest.list.v2+json"), "index");
  t.equal(mediaKind("application/vnd.docker.distribution.manifest.v2+json"), "manifest");
  t.equal(mediaKind("application/vnd.oci.image.config.v1+json"), "config");
});

t.test("no display (and no cli-progress) without a terminal or with -q", async (t) => {
  t.equal(wantsDisplay(true), false);
  if (!process.stdout.isTTY) t.equal(wantsDisplay(false), false);
  const d = await progressDisplay(true, "x");
  d.pull({ status: "downloading", digest: "sha256:00", mediaType: "", offset: 1, total: 2 });
  d.bytes(1, 2);
  d.stop();
  const loaded = Object.keys((await import("node:module")).createRequire(import.meta.url).cache).some((k) =>
    k.includes("cli-progress"),
  );
  t.equal(loaded, false, "cli-progress was not loaded");
});
