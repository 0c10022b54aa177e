import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { Code, isCode } from "@tsrunc/ttrpc/status";
import t, { type Test } from "tap";
import { type BuildEntry, tarArchive } from "../testing/tar-builder.js";
import { type ApplyOptions, applyLayer, cleanEntryName } from "./apply.js";

t.setTimeout(120_000);

async function workdir(t: Test): Promise<{ root: string; outside: string; base: string }> {
  const base = await mkdtemp(join(tmpdir(), "tsrunc-apply-"));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const root = join(base, "root");
  const outside = join(base, "outside");
  mkdirSync(root);
  mkdirSync(outside);
  writeFileSync(join(outside, "sentinel"), "keep");
  return { root, outside, base };
}

const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
const apply = (tar: Buffer, root: string, opts: Partial<ApplyOptions> = {}) =>
  applyLayer(Readable.from([tar]), root, { mode: "flat", ...opts });

function xattrs(path: string): Record<string, string> {
  const out = execFileSync("getfattr", ["-h", "-d", "-m", "-", "-e", "hex", "--absolute-names", path], {
    encoding: "utf8",
  });
  const r: Record<string, string> = {};
  for (const line of out.split("\n")) {
    const m = /^([^#=][^=]*)=(.*)$/.exec(line);
    if (m) r[m[1]!] = m[2]!;
  }
  return r;
}

const cap = Buffer.from("0100000200200000000000000000000000000000", "hex"); // binary, not UTF-8

const richLayer: BuildEntry[] = [
  { name: "./", type: "directory", mode: 0o755 },
  { name: "bin/", type: "directory", mode: 0o750, uid: 10, gid: 20, mtime: 1_600_000_000 },
  { name: "bin/tool", data: "#!/bin/sh\necho hi\n", mode: 0o4755, uid: 0, gid: 0, mtime: 1_500_000_000 },
  { name: "bin/tool-link", type: "link", linkname: "bin/tool" },
  { name: "bin/sh", type: "symlink", linkname: "/bin/tool", uid: 7, gid: 8 },
  {
    name: "bin/ping",
    data: "ping",
    pax: { "SCHILY.xattr.security.capability": cap, "SCHILY.xattr.user.note": "x" },
  },
  { name: "dev/", type: "directory" },
  { name: "dev/null", type: "char", devmajor: 1, devminor: 3, mode: 0o666 },
  { name: "dev/loop0", type: "block", devmajor: 7, devminor: 0, mode: 0o660, gid: 6 },
  { name: "run/fifo", type: "fifo", mode: 0o620, uid: 1000, gid: 1000 },
  { name: `deep/${"d".repeat(120)}/${"f".repeat(150)}`, data: "long gnu", gnuLongName: true },
  {
    name: "x",
    data: "pax named",
    pax: { path: `pax/${"p".repeat(200)}/file`, uid: "3000000", gid: "3000001" },
  },
  { name: Buffer.from([0x6c, 0x61, 0x74, 0xe9]), data: "latin-1 name" },
  { name: "/abs/file", data: "absolute names are made relative" },
  { name: "a/../b", data: "cleaned" },
];

t.test("flat: every entry kind with its metadata; DiffID of the uncompressed stream", async (t) => {
  const { root } = await workdir(t);
  const tar = tarArchive(richLayer);
  const res = await apply(tar, root);
  t.equal(res.diffId, sha(tar));
  t.equal(res.size, tar.length);
  t.equal(res.entries, richLayer.length);
  const st = (p: string) => lstatSync(join(root, p));
  t.equal(st("bin").mode & 0o7777, 0o750);
  t.same([st("bin").uid, st("bin").gid], [10, 20]);
  t.equal(st("bin").mtimeMs, 1_600_000_000_000);
  t.equal(st("bin/tool").mode & 0o7777, 0o4755, "setuid kept");
  t.equal(st("bin/tool").mtimeMs, 1_500_000_000_000);
  t.equal(st("bin/tool").ino, st("bin/tool-link").ino, "hardlink");
  t.equal(readlinkSync(join(root, "bin/sh")), "/bin/tool");
  t.same([st("bin/sh").uid, st("bin/sh").gid], [7, 8]);
  t.ok(st("dev/null").isCharacterDevice());
  t.equal(st("dev/null").rdev, (1 << 8) | 3);
  t.equal(st("dev/null").mode & 0o7777, 0o666);
  t.ok(st("dev/loop0").isBlockDevice());
  t.equal(st("dev/loop0").gid, 6);
  t.ok(st("run/fifo").isFIFO());
  t.same([st("run/fifo").uid, st("run/fifo").mode & 0o777], [1000, 0o620]);
  t.equal(readFileSync(join(root, `deep/${"d".repeat(120)}/${"f".repeat(150)}`), "utf8"), "long gnu");
  const paxFile = join(root, `pax/${"p".repeat(200)}/file`);
  t.equal(readFileSync(paxFile, "utf8"), "pax named");
  t.same([lstatSync(paxFile).uid, lstatSync(paxFile).gid], [3000000, 3000001]);
  t.ok(
    readdirSync(root, { encoding: "buffer" }).some((n) => n.equals(Buffer.from([0x6c, 0x61, 0x74, 0xe9]))),
  );
  t.equal(readFileSync(join(root, "abs/file"), "utf8"), "absolute names are made relative");
  t.equal(readFileSync(join(root, "b"), "utf8"), "cleaned");
  const xa = xattrs(join(root, "bin/ping"));
  t.equal(xa["security.capability"], `0x${cap.toString("hex")}`, "binary xattr byte-exact");
  t.equal(xa["user.note"], "0x78");
});

t.test("gzip and zstd layers give the same tree and the DiffID of the uncompressed tar", async (t) => {
  const tar = tarArchive(richLayer);
  const { root, base } = await workdir(t);
  const gz = gzipSync(tar);
  const r1 = await apply(gz, root);
  t.equal(r1.diffId, sha(tar));
  writeFileSync(join(base, "l.tar"), tar);
  execFileSync("zstd", ["-q", "-f", join(base, "l.tar"), "-o", join(base, "l.tar.zst")]);
  const root2 = join(base, "root2");
  mkdirSync(root2);
  const r2 = await apply(readFileSync(join(base, "l.tar.zst")), root2, {
    mediaType: "application/vnd.oci.image.layer.v1.tar+zstd",
  });
  t.equal(r2.diffId, sha(tar));
  t.equal(readFileSync(join(root2, "bin/tool"), "utf8"), "#!/bin/sh\necho hi\n");
});

t.test("overlay mode: whiteouts become 0/0 char devices, opaque dirs an xattr", async (t) => {
  const { root } = await workdir(t);
  const tar = tarArchive([
    { name: "etc/", type: "directory" },
    { name: "etc/.wh.passwd" },
    { name: "var/", type: "directory" },
    { name: "var/.wh..wh..opq" },
    { name: "var/new", data: "n" },
    { name: "usr/.wh..wh.plnk" },
    { name: "etc/.wh.trusted", pax: { "SCHILY.xattr.trusted.overlay.redirect": "/x" } },
  ]);
  await apply(tar, root, { mode: "overlay" });
  const wh = lstatSync(join(root, "etc/passwd"));
  t.ok(wh.isCharacterDevice());
  t.equal(wh.rdev, 0);
  t.equal(xattrs(join(root, "var"))["trusted.overlay.opaque"], "0x79");
  t.equal(readFileSync(join(root, "var/new"), "utf8"), "n");
  t.same(readdirSync(root).sort(), ["etc", "var"], "aufs metadata ignored");
});

t.test("flat mode: whiteouts delete, an opaque dir keeps only this layer's entries", async (t) => {
  const { root } = await workdir(t);
  await apply(
    tarArchive([
      { name: "etc/passwd", data: "root" },
      { name: "etc/group", data: "g" },
      { name: "var/lib/old", data: "o" },
      { name: "var/cache/keep/x", data: "x" },
      { name: "var/log", type: "directory" },
    ]),
    root,
  );
  await apply(
    tarArchive([
      { name: "etc/.wh.passwd" },
      { name: "var/", type: "directory" },
      { name: "var/cache/", type: "directory" },
      { name: "var/cache/new", data: "n" },
      { name: "var/.wh..wh..opq" },
    ]),
    root,
  );
  t.same(readdirSync(join(root, "etc")), ["group"]);
  t.same(readdirSync(join(root, "var")), ["cache"]);
  t.same(readdirSync(join(root, "var/cache")), ["new"], "lower children of a rewritten dir are hidden too");
});

t.test("entries replace what is there without following it", async (t) => {
  const { root, outside } = await workdir(t);
  await apply(
    tarArchive([
      { name: "l", type: "symlink", linkname: join(outside, "sentinel") },
      { name: "d/f", data: "f" },
    ]),
    root,
  );
  await apply(
    tarArchive([
      { name: "l", data: "replaced" },
      { name: "d", data: "now a file" },
    ]),
    root,
  );
  t.equal(readFileSync(join(outside, "sentinel"), "utf8"), "keep");
  t.equal(readFileSync(join(root, "l"), "utf8"), "replaced");
  t.equal(readFileSync(join(root, "d"), "utf8"), "now a file");
});

t.test("a symlink inside the root is followed for parents; absolute targets stay inside", async (t) => {
  const { root, outside } = await workdir(t);
  await apply(
    tarArchive([
      { name: "usr/lib/", type: "directory" },
      { name: "lib", type: "symlink", linkname: "usr/lib" },
      { name: "lib/a", data: "a" },
      { name: "abs", type: "symlink", linkname: outside }, // "/tmp/…/outside" taken as <root>/tmp/…
      { name: "abs/b", data: "b" },
    ]),
    root,
  );
  t.equal(readFileSync(join(root, "usr/lib/a"), "utf8"), "a");
  t.equal(readFileSync(join(root, outside, "b"), "utf8"), "b");
  t.same(readdirSync(outside), ["sentinel"]);
});

const escapes: Array<[string, BuildEntry[], string]> = [
  ["dot-dot name", [{ name: "../escaped", data: "x" }], "../escaped"],
  ["dot-dot inside a name", [{ name: "a/../../escaped", data: "x" }], "a/../../escaped"],
  ["dot-dot pax path", [{ name: "ok", data: "x", pax: { path: "../../escaped" } }], "../../escaped"],
  [
    "symlink to a parent outside, then a write through it",
    [
      { name: "evil", type: "symlink", linkname: "../outside" },
      { name: "evil/escaped", data: "x" },
    ],
    "evil/escaped",
  ],
  [
    "a chain of symlinks that ends outside",
    [
      { name: "d/", type: "directory" },
      { name: "d/a", type: "symlink", linkname: "../b" },
      { name: "b", type: "symlink", linkname: "d/../../outside" },
      { name: "d/a/escaped", data: "x" },
    ],
    "d/a/escaped",
  ],
  ["hardlink to a file outside", [{ name: "hl", type: "link", linkname: "../outside/sentinel" }], "hl"],
  [
    "hardlink through a symlink outside",
    [
      { name: "evil", type: "symlink", linkname: "../outside" },
      { name: "hl", type: "link", linkname: "evil/sentinel" },
    ],
    "hl",
  ],
  ["hardlink to a missing target", [{ name: "hl", type: "link", linkname: "nope" }], "hl"],
  [
    "opaque marker under a symlink outside",
    [{ name: "evil", type: "symlink", linkname: "../outside" }, { name: "evil/.wh..wh..opq" }],
    "evil/.wh..wh..opq",
  ],
  [
    "whiteout under a symlink outside",
    [{ name: "evil", type: "symlink", linkname: "../outside" }, { name: "evil/.wh.sentinel" }],
    "evil/.wh.sentinel",
  ],
];

for (const mode of ["flat", "overlay"] as const) {
  t.test(`${mode}: escapes are refused, named, and leave nothing behind`, async (t) => {
    for (const [what, entries, named] of escapes) {
      const { root, outside } = await workdir(t);
      const before = readdirSync(join(outside, ".."));
      try {
        await apply(tarArchive([{ name: "pre", data: "p" }, ...entries, { name: "post", data: "p" }]), root, {
          mode,
        });
        t.fail(`${what}: applied`);
      } catch (err) {
        t.ok(isCode(err, Code.InvalidArgument), `${what}: ${String(err)}`);
        t.match((err as Error).message, JSON.stringify(named), `${what}: names the entry`);
      }
      t.same(readdirSync(root), [], `${what}: root emptied`);
      t.same(readdirSync(outside), ["sentinel"], `${what}: outside untouched`);
      t.equal(readFileSync(join(outside, "sentinel"), "utf8"), "keep");
      t.same(readdirSync(join(outside, "..")), before);
    }
  });
}

t.test("a DiffID mismatch fails and empties the directory", async (t) => {
  const { root } = await workdir(t);
  const tar = tarArchive([{ name: "a", data: "a" }]);
  await t.rejects(apply(tar, root, { expectedDiffId: sha(Buffer.from("other")) }), {
    code: Code.FailedPrecondition,
  });
  t.same(readdirSync(root), []);
  const ok = await apply(tar, root, { expectedDiffId: sha(tar) });
  t.equal(ok.diffId, sha(tar));
});

t.test("corrupt or truncated streams fail cleanly", async (t) => {
  const { root } = await workdir(t);
  const tar = tarArchive([
    { name: "a", data: "x".repeat(5000) },
    { name: "b", data: "b" },
  ]);
  await t.rejects(apply(tar.subarray(0, 2048), root), { code: Code.InvalidArgument });
  t.same(readdirSync(root), []);
  const bad = Buffer.from(tar);
  bad[10] = 0x41; // checksum now wrong
  await t.rejects(apply(bad, root), { code: Code.InvalidArgument });
  await t.rejects(apply(gzipSync(tar).subarray(0, 100), root), { code: Code.InvalidArgument });
  t.same(readdirSync(root), []);
});

t.test(
  "cleanEntryName follows containerd: clean, relative to the root, refuse what climbs out",
  async (t) => {
    t.equal(cleanEntryName("./a//b/"), "a/b");
    t.equal(cleanEntryName("/etc/passwd"), "etc/passwd");
    t.equal(cleanEntryName("/../../etc"), "etc");
    t.equal(cleanEntryName("a/../b"), "b");
    t.equal(cleanEntryName("./"), "");
    t.equal(cleanEntryName(".."), undefined);
    t.equal(cleanEntryName("a/../../b"), undefined);
  },
);

t.test("overlay mode: a parent the layer does not carry takes the lower layer's metadata", async (t) => {
  const { root, base } = await workdir(t);
  const lower = join(base, "lower");
  mkdirSync(lower);
  await apply(
    tarArchive([{ name: "srv/", type: "directory", mode: 0o711, uid: 33, gid: 34, mtime: 1_234_567_890 }]),
    lower,
  );
  await apply(
    tarArchive([
      { name: "srv/new", data: "n" },
      { name: "opt/x", data: "x" },
    ]),
    root,
    {
      mode: "overlay",
      parents: [lower],
    },
  );
  const st = lstatSync(join(root, "srv"));
  t.same([st.mode & 0o7777, st.uid, st.gid, st.mtimeMs], [0o711, 33, 34, 1_234_567_890_000]);
  t.equal(lstatSync(join(root, "opt")).mode & 0o7777, 0o755, "no lower: 0755 root");
});
