// The single files' addon cache (scripts/lib/sea-addons.cjs): native code that runs as root is
// loaded only from a root-owned directory nobody else can write to, by content digest, after its
// hash is checked. Refusals are one line; a cached copy that differs is replaced, never loaded.
// Through the module itself and through the single-file tsruncd (whose start loads our addon to
// run itself again with its V8 flags).
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import t, { type Test } from "tap";
import { REPO } from "./helpers/our-shim.js";

const require = createRequire(import.meta.url);
const { cachedAddon } = require(path.join(REPO, "scripts/lib/sea-addons.cjs")) as {
  cachedAddon(name: string, bytes: Buffer, sha: string, base?: string): { file: string; wrote: boolean };
};
const TSRUNCD = path.join(REPO, "packages/daemon/dist/sea/tsruncd");
const ADDON = path.join(REPO, "packages/daemon/dist/bin/tsrunc_native.node");
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** A fresh root-owned directory under /run (0755, root's: a chain the cache accepts). */
function runDir(t: Test): string {
  const dir = `/run/tsr-addons-${randomBytes(5).toString("hex")}`;
  fs.mkdirSync(dir, { mode: 0o755 });
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  return "(accepted)";
}

t.test("the cache refuses directories that are not root's alone", async (t) => {
  const bytes = fs.readFileSync(ADDON);
  const sha = sha256(bytes);
  const base = runDir(t);

  // Under a world-writable parent (/tmp, sticky or not): refused before anything is created.
  const underTmp = fs.mkdtempSync("/tmp/tsr-addons-");
  t.teardown(() => fs.rmSync(underTmp, { recursive: true, force: true }));
  fs.chmodSync(underTmp, 0o700);
  t.match(
    refusal(() => cachedAddon("tsrunc_native.node", bytes, sha, path.join(underTmp, "c"))),
    /^addon cache: \/tmp is writable by others \(mode 1777\); refusing to load code from it$/,
  );
  t.notOk(fs.existsSync(path.join(underTmp, "c")), "nothing created below /tmp");

  // The directory itself writable by others.
  const open = path.join(base, "open");
  fs.mkdirSync(open);
  fs.chmodSync(open, 0o777);
  t.match(
    refusal(() => cachedAddon("tsrunc_native.node", bytes, sha, open)),
    /writable by others \(mode 777\)/,
  );

  // Owned by someone else.
  const theirs = path.join(base, "theirs");
  fs.mkdirSync(theirs, { mode: 0o700 });
  fs.chownSync(theirs, 65534, 65534);
  t.equal(
    refusal(() => cachedAddon("tsrunc_native.node", bytes, sha, theirs)),
    `addon cache: ${theirs} is owned by uid 65534, not root; refusing to load code from it`,
  );
  // A digest directory someone else prepared.
  const good = path.join(base, "good");
  fs.mkdirSync(path.join(good, sha), { recursive: true, mode: 0o700 });
  fs.chownSync(path.join(good, sha), 65534, 65534);
  t.match(
    refusal(() => cachedAddon("tsrunc_native.node", bytes, sha, good)),
    /owned by uid 65534/,
  );
  // Embedded bytes that do not match their recorded digest.
  t.match(
    refusal(() => cachedAddon("tsrunc_native.node", bytes, "0".repeat(64), path.join(base, "fresh"))),
    /does not match its digest/,
  );
});

t.test("a copy is written once, 0700/0500, reused, and replaced when it differs", async (t) => {
  const bytes = fs.readFileSync(ADDON);
  const sha = sha256(bytes);
  const base = path.join(runDir(t), "addons");
  const first = cachedAddon("tsrunc_native.node", bytes, sha, base);
  t.equal(first.file, path.join(base, sha, "tsrunc_native.node"));
  t.equal(first.wrote, true);
  t.equal(fs.statSync(base).mode & 0o777, 0o700);
  t.equal(fs.statSync(path.dirname(first.file)).mode & 0o777, 0o700);
  t.equal(fs.statSync(first.file).mode & 0o777, 0o500);
  t.same(fs.readdirSync(path.dirname(first.file)), ["tsrunc_native.node"], "no temp file left");
  const again = cachedAddon("tsrunc_native.node", bytes, sha, base);
  t.same(again, { file: first.file, wrote: false }, "reused");
  const ino = fs.statSync(first.file).ino;

  // Tampered (same size, one byte): replaced by a fresh copy (a new inode), not reused.
  const bad = Buffer.from(bytes);
  bad[bad.length - 1] = (bad[bad.length - 1] as number) ^ 0xff;
  fs.chmodSync(first.file, 0o700);
  fs.writeFileSync(first.file, bad);
  fs.chmodSync(first.file, 0o500);
  const fixed = cachedAddon("tsrunc_native.node", bytes, sha, base);
  t.equal(fixed.wrote, true, "rewritten");
  t.not(fs.statSync(first.file).ino, ino, "a new file renamed over the tampered one");
  t.equal(sha256(fs.readFileSync(first.file)), sha);
  // Right bytes, wrong mode (group-writable): also replaced.
  fs.chmodSync(first.file, 0o570);
  t.equal(
    cachedAddon("tsrunc_native.node", bytes, sha, base).wrote,
    true,
    "a group-writable copy is replaced",
  );
  t.equal(fs.statSync(first.file).mode & 0o777, 0o500);
});

t.test(
  "the single-file tsruncd: one-line refusal, and a tampered addon is replaced, not loaded",
  async (t) => {
    const base = runDir(t);
    const run = (cache: string) =>
      spawnSync(TSRUNCD, ["--help"], {
        env: {
          PATH: "/usr/sbin:/usr/bin:/sbin:/bin",
          TSRUNC_ADDON_CACHE: cache,
          TSRUNC_CODE_CACHE_REPORT: "1",
        },
        encoding: "utf8",
      });
    const open = path.join(base, "open");
    fs.mkdirSync(open);
    fs.chmodSync(open, 0o757);
    const refused = run(open);
    t.equal(refused.status, 1, "exit 1");
    t.equal(
      refused.stderr,
      `tsruncd: addon cache: ${open} is writable by others (mode 757); refusing to load code from it\n`,
      "one line, no stack",
    );

    const cache = path.join(base, "cache");
    const ok = run(cache);
    t.equal(ok.status, 0, ok.stderr);
    t.equal(ok.stderr, "code cache: accepted\n", "the re-run's code cache is accepted");
    const [digest] = fs.readdirSync(cache);
    const file = path.join(cache, digest as string, "tsrunc_native.node");
    const good = fs.readFileSync(file);
    // Garbage in place of the cached addon: dlopen would fail ("invalid ELF header") if it were loaded.
    fs.chmodSync(file, 0o700);
    fs.writeFileSync(file, "not an ELF file\n");
    fs.chmodSync(file, 0o500);
    const again = run(cache);
    t.equal(again.status, 0, again.stderr);
    t.equal(again.stderr, "code cache: accepted\n");
    t.same(fs.readFileSync(file), good, "the tampered copy was replaced with the embedded addon");
  },
);

t.test("the single-file shim's start reports a bad cache in one line (containerd shows it)", async (t) => {
  const base = runDir(t);
  const open = path.join(base, "open");
  fs.mkdirSync(open);
  fs.chmodSync(open, 0o775);
  const shim = path.join(REPO, "packages/shim-runc-v2/dist/sea/containerd-shim-tsrunc-v2");
  const r = spawnSync(shim, ["-namespace", "n1", "-address", "/run/x.sock", "-id", "c1", "start"], {
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", TSRUNC_ADDON_CACHE: open },
    cwd: base,
    input: "",
    encoding: "utf8",
  });
  t.equal(r.status, 1);
  t.equal(r.stdout, "");
  t.equal(
    r.stderr,
    `containerd-shim-tsrunc-v2: addon cache: ${open} is writable by others (mode 775); refusing to load code from it\n`,
  );
});
