import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { readImageFile } from "./image-files.js";

const root = mkdtempSync(join(tmpdir(), "tsrunc-imgfiles-"));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
const layer = (name: string) => {
  const d = join(root, name);
  mkdirSync(d, { recursive: true });
  return d;
};
const write = (p: string, data = "x") => {
  mkdirSync(join(p, ".."), { recursive: true });
  writeFileSync(p, data);
};
const whiteout = (p: string) => execFileSync("mknod", [p, "c", "0", "0"]);
const opaque = (p: string) => execFileSync("setfattr", ["-n", "trusted.overlay.opaque", "-v", "y", p]);
const read = async (layers: string[], p: string) => (await readImageFile(layers, p))?.toString();

t.test("top-down through layers: upper wins, lower shows through a directory", async (t) => {
  const l0 = layer("a0");
  const l1 = layer("a1");
  write(join(l0, "etc/passwd"), "lower");
  write(join(l0, "etc/group"), "group-lower");
  write(join(l1, "etc/passwd"), "upper");
  write(join(l1, "etc/hosts"), "h");
  t.equal(await read([l1, l0], "/etc/passwd"), "upper");
  t.equal(await read([l1, l0], "/etc/group"), "group-lower");
  t.equal(await read([l1, l0], "/etc/nothing"), undefined);
  t.equal(await read([l1, l0], "/etc"), undefined, "a directory is not a file");
});

t.test("a whiteout hides the file; an opaque directory hides the lower layers' entries", async (t) => {
  const l0 = layer("b0");
  const l1 = layer("b1");
  const l2 = layer("b2");
  write(join(l0, "etc/passwd"), "lower");
  write(join(l0, "etc/group"), "g");
  mkdirSync(join(l1, "etc"));
  whiteout(join(l1, "etc/passwd"));
  t.equal(await read([l1, l0], "/etc/passwd"), undefined);
  t.equal(await read([l1, l0], "/etc/group"), "g");
  mkdirSync(join(l2, "etc"));
  opaque(join(l2, "etc"));
  t.equal(await read([l2, l0], "/etc/group"), undefined, "opaque etc");
  const l3 = layer("b3");
  whiteout(join(l3, "etc"));
  t.equal(await read([l3, l0], "/etc/group"), undefined, "a whited-out directory");
});

t.test("symlinks resolve inside the image, never on the host", async (t) => {
  const l0 = layer("c0");
  const l1 = layer("c1");
  write(join(l0, "usr/lib/passwd"), "from usr");
  mkdirSync(join(l1, "etc"), { recursive: true });
  symlinkSync("/usr/lib/passwd", join(l1, "etc/passwd"));
  symlinkSync("../../../../../../etc/shadow", join(l1, "etc/group"));
  t.equal(await read([l1, l0], "/etc/passwd"), "from usr", "absolute target taken in the image");
  t.equal(await read([l1, l0], "/etc/group"), undefined, "climbing stops at the image's /");
  symlinkSync("usr/lib", join(l1, "lib"));
  t.equal(await read([l1, l0], "/lib/passwd"), "from usr", "a directory symlink");
  symlinkSync("loop", join(l1, "loop"));
  await t.rejects(readImageFile([l1, l0], "/loop"), /too many levels/);
});
