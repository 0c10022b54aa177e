import { fileURLToPath } from "node:url";
import pty from "node-pty";
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

t.test("on a terminal: bars drawn, and ^C restores the cursor and exits 130", async (t) => {
  const progressJs = fileURLToPath(new URL("./progress.js", import.meta.url));
  const script = `
    const { progressDisplay } = await import(${JSON.stringify(progressJs)});
    const d = await progressDisplay(false, "pull");
    d.pull({ status: "downloading", digest: "sha256:${"a".repeat(64)}",
      mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", offset: 5, total: 40 });
    process.stderr.write("drawn\\n");
    setTimeout(() => {}, 20000);`;
  const term = pty.spawn(process.execPath, ["--input-type=module", "-e", script], {
    cols: 110,
    rows: 20,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", TERM: "xterm" },
  });
  let out = "";
  term.onData((x) => {
    out += x;
  });
  t.teardown(() => term.kill("SIGKILL"));
  const exited = new Promise<number>((res) => term.onExit((e) => res(e.exitCode)));
  const end = Date.now() + 10_000;
  while (!out.includes("drawn") && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 200));
  term.kill("SIGINT");
  t.equal(await exited, 130);
  t.match(out, /layer-aaaaaaaaaaaa .*downloading +5 B\/40 B/);
  t.match(out, /total/);
  t.ok(out.lastIndexOf("\u001b[?25h") > out.lastIndexOf("\u001b[?25l"), "the cursor is shown again");
});
