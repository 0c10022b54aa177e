// writeOverlayLayer: an overlay upper directory made by hand (files, a hardlink pair, a symlink, a
// fifo, a long non-ASCII name, a binary security.capability and a user xattr, overlay's whiteout
// device and opaque directory, setuid) read back with our tar reader: OCI whiteouts, link entries,
// xattrs byte-exact, trusted.overlay.* left out; then applied in overlay mode onto a lower
// directory, which gives the tree the overlay would show.
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import t from "tap";
import { applyLayer } from "./apply.js";
import { ByteSource, type TarHeader, tarEntries } from "./tar-reader.js";
import { writeOverlayLayer } from "./write.js";

const CAP = Buffer.from("0100000200200000000000000000000000000000", "hex"); // cap_net_bind_service

t.test("an overlay upper dir as an OCI layer", async (t) => {
  const root = await mkdtemp(join(tmpdir(), "tsrunc-write-"));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const upper = join(root, "upper");
  mkdirSync(join(upper, "etc"), { recursive: true });
  writeFileSync(join(upper, "etc/hello"), "hello\n");
  linkSync(join(upper, "etc/hello"), join(upper, "etc/hello-link"));
  symlinkSync("hello", join(upper, "etc/sym"));
  execFileSync("mkfifo", [join(upper, "etc/fifo")]);
  const long = `${"é".repeat(60)}.txt`;
  writeFileSync(join(upper, long), "long name");
  writeFileSync(join(upper, "ping"), "binary");
  chmodSync(join(upper, "ping"), 0o4755);
  execFileSync("setfattr", [
    "-n",
    "security.capability",
    "-v",
    `0x${CAP.toString("hex")}`,
    join(upper, "ping"),
  ]);
  execFileSync("setfattr", ["-n", "user.note", "-v", "kept", join(upper, "ping")]);
  execFileSync("mknod", [join(upper, "gone"), "c", "0", "0"]); // overlay's whiteout
  mkdirSync(join(upper, "opaque"));
  execFileSync("setfattr", ["-n", "trusted.overlay.opaque", "-v", "y", join(upper, "opaque")]);
  writeFileSync(join(upper, "opaque/new"), "only this");

  const chunks: Buffer[] = [];
  for await (const c of writeOverlayLayer(upper)) chunks.push(c);
  const tar = Buffer.concat(chunks);
  t.equal(tar.length % 512, 0, "whole blocks");
  const headers: TarHeader[] = [];
  for await (const e of tarEntries(new ByteSource(Readable.from([tar])))) {
    headers.push(e.header);
    for await (const _ of e.data()) {
      // skipped
    }
  }
  const byName = new Map(headers.map((h) => [Buffer.from(h.name, "latin1").toString("utf8"), h]));
  t.same(
    [...byName.keys()],
    [
      "etc/",
      "etc/fifo",
      "etc/hello",
      "etc/hello-link",
      "etc/sym",
      ".wh.gone", // in the place of the name it removes
      "opaque/",
      "opaque/.wh..wh..opq",
      "opaque/new",
      "ping",
      long,
    ],
    "names in byte order (a whiteout where its name is), a directory before its contents",
  );
  t.equal(byName.get("etc/hello-link")?.type, "link");
  t.equal(byName.get("etc/hello-link")?.linkname, "etc/hello");
  t.equal(byName.get("etc/sym")?.type, "symlink");
  t.equal(byName.get("etc/fifo")?.type, "fifo");
  const ping = byName.get("ping")!;
  t.equal(ping.mode & 0o7777, 0o4755, "setuid kept");
  t.same(ping.xattrs.get("security.capability"), CAP, "binary xattr byte-exact");
  t.same(ping.xattrs.get("user.note")?.toString(), "kept");
  t.notOk(
    [...(byName.get("opaque/")?.xattrs.keys() ?? [])].some((k) => k.startsWith("trusted.overlay.")),
    "no trusted.overlay.* xattr in the layer",
  );

  // Applied over a lower tree (overlay mode into an empty upper), the merged view is right.
  const lower = join(root, "lower");
  mkdirSync(join(lower, "opaque"), { recursive: true });
  writeFileSync(join(lower, "gone"), "removed by the layer");
  writeFileSync(join(lower, "opaque/old"), "hidden by the opaque dir");
  const up2 = join(root, "up2");
  mkdirSync(up2);
  const r = await applyLayer(Readable.from([tar]), up2, {
    mode: "overlay",
    parents: [lower],
    compression: "none",
  });
  t.equal(r.size, tar.length);
  t.ok(lstatSync(join(up2, "gone")).isCharacterDevice(), "whiteout back as overlay's");
  t.equal(readFileSync(join(up2, "etc/hello"), "utf8"), "hello\n");
  t.equal(lstatSync(join(up2, "etc/hello")).ino, lstatSync(join(up2, "etc/hello-link")).ino, "hardlinked");
  t.ok(existsSync(join(up2, "opaque/new")));
  const opq = execFileSync("getfattr", [
    "-h",
    "--only-values",
    "-n",
    "trusted.overlay.opaque",
    join(up2, "opaque"),
  ]);
  t.equal(opq.toString(), "y", "opaque dir back as overlay's");
});
