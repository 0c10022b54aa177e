import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import t, { type Test } from "tap";
import { bundleDir, createBundle, relayShimLog, removeBundle } from "./bundle.js";

function scratch(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), "tsrd-bundle-"));
  t.teardown(() => {
    execFileSync("sh", [
      "-c",
      `grep -q " ${dir}/" /proc/self/mountinfo && umount -R -l ${dir}/*/*/rootfs || true`,
    ]);
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

t.test("a bundle is laid out as containerd does and refuses to exist twice", async (t) => {
  const state = scratch(t);
  const dir = bundleDir(state, "ns", "c1");
  t.equal(dir, join(state, "ns", "c1"));
  await createBundle(dir, Buffer.from('{"ociVersion":"1.0.2"}'), true);
  t.equal(readFileSync(join(dir, "config.json"), "utf8"), '{"ociVersion":"1.0.2"}');
  t.ok(statSync(join(dir, "rootfs")).isDirectory(), "rootfs directory");
  t.ok(statSync(join(dir, "log")).isFIFO(), "log is a fifo");
  await t.rejects(
    createBundle(dir, Buffer.from("{}"), true),
    { code: "EEXIST" },
    "an existing bundle is refused",
  );
});

t.test("removing a bundle unmounts a rootfs left mounted and never crosses into it", async (t) => {
  const state = scratch(t);
  const dir = bundleDir(state, "ns", "c2");
  await createBundle(dir, Buffer.from("{}"), true);
  execFileSync("mount", ["-t", "tmpfs", "tsrd-test", join(dir, "rootfs")]);
  execFileSync("mount", ["-t", "tmpfs", "tsrd-test", join(dir, "rootfs")]); // stacked twice
  await removeBundle(dir);
  t.notOk(existsSync(dir), "bundle removed");
  t.notOk(readFileSync("/proc/self/mountinfo", "utf8").includes(dir), "nothing mounted there any more");
  await removeBundle(dir);
  t.pass("removing a missing bundle is fine");
});

t.test("the shim's log lines reach the daemon's log with their level", async (t) => {
  const state = scratch(t);
  const dir = bundleDir(state, "ns", "c3");
  await createBundle(dir, Buffer.from("{}"), false);
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: "debug" }, { write: (s: string) => lines.push(JSON.parse(s)) });
  const relay = relayShimLog(dir, log);
  const w = openSync(join(dir, "log"), "w");
  writeSync(w, '{"level":50,"msg":"boom","id":"c3"}\nnot json at all\n{"level":30,"msg":"fine"}\n');
  await new Promise((r) => setTimeout(r, 100));
  relay.close();
  t.match(lines, [
    { level: 50, msg: "boom", shim: { id: "c3" } },
    { level: 30, msg: "shim log", shim: "not json at all" },
    { level: 30, msg: "fine" },
  ]);
});
