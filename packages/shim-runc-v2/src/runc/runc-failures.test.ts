// How the driver fails, with real runc: runc's own messages and their kinds, invalid input,
// concurrent calls each getting their own error, checkpoint with CRIU's error, aborts and
// timeouts of a hung runc, the shared log file, a missing binary.

import { constants, existsSync, readFileSync } from "node:fs";
import { open, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { execa } from "execa";
import t from "tap";
import { Runc } from "./runc.js";
import { RuncError } from "./runc-errors.js";
import { alive, expectRuncError, runcFixture, waitFor } from "./runc-fixture.js";

t.test("unknown containers are not-found with runc's message", async (t) => {
  const f = await runcFixture(t);
  const id = f.id("missing");
  const err = await expectRuncError(t, f.runc.state(id), "not-found");
  t.equal(err.message, "container does not exist");
  t.equal(err.code, 5);
  t.equal(err.exitCode, 1);
  t.equal(err.command, "state");
  t.ok(err.args.includes("state") && err.args.includes(id));
  await expectRuncError(t, f.runc.kill(id, 9), "not-found", "kill");
  await expectRuncError(t, f.runc.start(id), "not-found", "start");
  await expectRuncError(t, f.runc.pause(id), "not-found", "pause");
  await expectRuncError(t, f.runc.ps(id), "not-found", "ps");
  await expectRuncError(t, f.runc.stats(id), "not-found", "events");
  await expectRuncError(t, f.runc.delete(id), "not-found", "delete");
  await f.runc.delete(id, { force: true }); // runc: --force of a missing container succeeds
  t.same(await readdir(f.callTmp), []);
});

t.test("create of an existing id is already-exists", async (t) => {
  const f = await runcFixture(t);
  const id = f.id();
  const bundle = await f.bundle(id, { args: ["sleep", "1000"] });
  await f.runc.create(id, bundle, { pidFile: join(f.dir, "1.pid") });
  const err = await expectRuncError(
    t,
    f.runc.create(id, bundle, { pidFile: join(f.dir, "2.pid") }),
    "already-exists",
  );
  t.equal(err.message, "runc create failed: container with given ID already exists");
  t.equal(err.code, 6);
  t.notOk(existsSync(join(f.dir, "2.pid")));
  await f.runc.delete(id, { force: true });
  t.same(f.leftoverCgroups(id), []);
});

t.test("state conflicts of a stopped container", async (t) => {
  const f = await runcFixture(t);
  const id = f.id();
  const bundle = await f.bundle(id, { args: ["true"] });
  const { pid } = await f.runc.create(id, bundle, { pidFile: join(f.dir, "pid") });
  await f.runc.start(id);
  await waitFor("exit", () => !alive(pid));
  await waitFor("stopped", async () => (await f.runc.state(id)).status === "stopped");
  const kill = await expectRuncError(t, f.runc.kill(id, 15), "not-running", "kill");
  t.equal(kill.message, "container not running");
  t.equal(kill.code, 9);
  await f.runc.kill(id, 9, { all: true }); // runc: kill --all of a stopped container succeeds
  const start = await expectRuncError(t, f.runc.start(id), "stopped", "start");
  t.equal(start.message, "cannot start a container that has stopped");
  await expectRuncError(t, f.runc.pause(id), "not-running", "pause");
  await expectRuncError(t, f.runc.resume(id), "invalid-state", "resume");
  await expectRuncError(t, f.runc.update(id, { pids: { limit: 10 } }), "not-running", "update");
  t.same(await f.runc.ps(id), []);
  await f.runc.delete(id);
  t.same(f.leftoverCgroups(id), []);
});

t.test("invalid input never reaches runc", async (t) => {
  const f = await runcFixture(t);
  const bundle = join(f.dir, "bundles", "x");
  for (const [what, call] of [
    ["id with a slash", () => f.runc.state("../etc")],
    ["id that is a flag", () => f.runc.delete("--force")],
    ["empty id", () => f.runc.start("")],
    ["relative bundle", () => f.runc.create("c1", "bundle", { pidFile: "/tmp/p" })],
    ["relative pid file", () => f.runc.create("c1", bundle, { pidFile: "p" })],
    ["relative console socket", () => f.runc.create("c1", bundle, { pidFile: "/p", consoleSocket: "s" })],
    ["signal 0", () => f.runc.kill("c1", 0)],
    ["relative image path", () => f.runc.checkpoint("c1", { imagePath: "img" })],
    ["bad namespace", () => f.runc.checkpoint("c1", { imagePath: "/img", emptyNamespaces: ["net work"] })],
    ["bad stdio", () => f.runc.create("c1", bundle, { pidFile: "/p", stdio: { stdout: -3 } })],
    ["negative timeout", () => f.runc.state("c1", { timeoutMs: -1 })],
  ] as const) {
    const err = await expectRuncError(t, call(), "invalid-argument", what);
    t.equal(err.code, 3);
  }
  t.throws(() => new Runc({ root: "relative" }), { name: "RuncError", code: 3 });
  t.same(await readdir(f.callTmp), [], "no call got as far as its temp dir");
});

t.test("concurrent calls each get their own runc error", async (t) => {
  const f = await runcFixture(t);
  const n = 8;
  const ids = Array.from({ length: n }, () => f.id("par"));
  const bundles = await Promise.all(ids.map((id, i) => f.bundle(id, { args: [`missing-${i}-binary`] })));
  const results = await Promise.allSettled(
    ids.map((id, i) => f.runc.create(id, bundles[i]!, { pidFile: join(f.dir, `${id}.pid`) })),
  );
  results.forEach((r, i) => {
    t.equal(r.status, "rejected", `create ${i} fails`);
    const err = r.status === "rejected" ? (r.reason as RuncError) : undefined;
    t.ok(err instanceof RuncError);
    t.match(
      err?.message ?? "",
      new RegExp(`exec: "missing-${i}-binary": executable file not found`),
      `error ${i} is its own`,
    );
  });
  // And a mix of successes and failures in parallel.
  const good = f.id("good");
  await f.runc.create(good, await f.bundle(good, { args: ["sleep", "1000"] }), {
    pidFile: join(f.dir, "good.pid"),
  });
  const mixed = await Promise.allSettled([
    f.runc.state(good),
    f.runc.state(f.id("nope")),
    f.runc.ps(good),
    f.runc.kill(f.id("nope"), 9),
    f.runc.state(good),
  ]);
  t.same(
    mixed.map((r) => r.status),
    ["fulfilled", "rejected", "fulfilled", "rejected", "fulfilled"],
  );
  t.same(await readdir(f.callTmp), []);
  for (const id of [...ids, good]) await f.runc.delete(id, { force: true });
  for (const id of [...ids, good]) t.same(f.leftoverCgroups(id), [], `no cgroup left for ${id}`);
});

t.test("checkpoint returns CRIU's own error (or succeeds where CRIU works)", async (t) => {
  const f = await runcFixture(t);
  const id = f.id();
  const bundle = await f.bundle(id, { args: ["sleep", "1000"] });
  const { pid } = await f.runc.create(id, bundle, { pidFile: join(f.dir, "pid") });
  await f.runc.start(id);
  const imagePath = join(f.dir, "image");
  const workPath = join(f.dir, "work");
  const started = Date.now();
  const err = await f.runc
    .checkpoint(id, { imagePath, workPath, leaveRunning: true, timeoutMs: 120_000 })
    .then(() => undefined)
    .catch((e: unknown) => e);
  t.ok(Date.now() - started < 120_000, `returned in ${Date.now() - started}ms`);
  if (err === undefined) {
    t.ok(existsSync(join(imagePath, "inventory.img")), "CRIU works here: the image exists");
  } else {
    t.ok(err instanceof RuncError, String(err));
    const e = err as RuncError;
    t.equal(e.kind, "failed");
    t.match(e.message, /^criu failed: type DUMP errno \d+\nlog file: .*dump\.log/, "runc's message");
    t.ok(e.criuErrors.length > 0, `CRIU's own errors: ${JSON.stringify(e.criuErrors)}`);
    for (const line of e.criuErrors) t.ok(e.message.includes(`criu: ${line}`));
    t.comment(e.message);
  }
  t.equal((await f.runc.state(id)).status, "running", "--leave-running: still running");
  t.ok(alive(pid));

  const noCriu = f.makeRunc({ criu: join(f.dir, "no-such-criu") });
  const missing = await expectRuncError(
    t,
    noCriu.checkpoint(id, { imagePath, workPath, leaveRunning: true }),
    "failed",
  );
  t.match(
    missing.message,
    /^CRIU version check failed: fork\/exec .*no-such-criu: no such file or directory$/,
  );
  await expectRuncError(t, f.runc.checkpoint(f.id("nope"), { imagePath }), "not-found");

  await f.runc.delete(id, { force: true });
  t.same(f.leftoverCgroups(id), []);
});

/** A bundle whose createRuntime hook blocks runc create until `gate` (a fifo) is opened. */
async function hungCreate(t: Parameters<typeof runcFixture>[0]) {
  const f = await runcFixture(t);
  const id = f.id("hung");
  const gate = join(f.dir, `${id}.gate`);
  await execa("mkfifo", [gate]);
  const bundle = await f.bundle(id, {
    args: ["true"],
    edit: (spec) => {
      spec.hooks = { createRuntime: [{ path: "/bin/busybox", args: ["cat", gate] }] };
    },
  });
  // Releases the orphaned hook: a writer's open and close give `cat` its EOF.
  const release = async () => {
    const w = await open(gate, constants.O_WRONLY | constants.O_NONBLOCK).catch(() => undefined);
    await w?.close();
  };
  t.teardown(release);
  return { f, id, bundle, release };
}

t.test("aborting a hung runc kills it and rejects as canceled", async (t) => {
  const { f, id, bundle } = await hungCreate(t);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error("test gave up")), 300);
  const started = Date.now();
  const err = await expectRuncError(
    t,
    f.runc.create(id, bundle, { pidFile: join(f.dir, "pid"), signal: controller.signal }),
    "canceled",
  );
  clearTimeout(timer);
  const elapsed = Date.now() - started;
  t.ok(elapsed >= 250 && elapsed < 5000, `rejected after ${elapsed}ms`);
  t.equal(err.message, "runc create canceled: test gave up");
  t.equal(err.code, 1);
  t.same(await readdir(f.callTmp), [], "the call's temp dir is gone");
  // runc died mid-create: its cgroups may remain, and the caller must clean up.
  await f.destroy(id);
  t.same(f.leftoverCgroups(id), []);

  const pre = await expectRuncError(
    t,
    f.runc.state(id, { signal: AbortSignal.abort() }),
    "canceled",
    "pre-aborted",
  );
  t.match(pre.message, /^runc state canceled/);
});

t.test("a deadline kills a hung runc and rejects as timeout", async (t) => {
  const { f, id, bundle } = await hungCreate(t);
  const started = Date.now();
  const err = await expectRuncError(
    t,
    f.runc.create(id, bundle, { pidFile: join(f.dir, "pid"), timeoutMs: 300 }),
    "timeout",
  );
  const elapsed = Date.now() - started;
  t.ok(elapsed >= 250 && elapsed < 5000, `rejected after ${elapsed}ms`);
  t.equal(err.message, "runc create timed out after 300ms and was killed");
  t.equal(err.code, 4);
  await f.destroy(id);
  t.same(f.leftoverCgroups(id), []);
  // The instance-wide default applies when a call sets none.
  const quick = f.makeRunc({ timeoutMs: 300 });
  const id2 = f.id("hung");
  await expectRuncError(t, quick.create(id2, bundle, { pidFile: join(f.dir, "pid2") }), "timeout");
  await f.destroy(id2);
  t.same(f.leftoverCgroups(id2), []);
});

t.test("every call's runc log is appended to logPath", async (t) => {
  const f = await runcFixture(t);
  const logPath = join(f.dir, "runc.log.json");
  const runc = f.makeRunc({ logPath });
  const a = f.id("nope");
  const b = f.id("nope");
  await expectRuncError(t, runc.state(a), "not-found");
  await expectRuncError(t, runc.kill(b, 9), "not-found");
  await runc.version();
  const lines = (await readFile(logPath, "utf8")).trim().split("\n");
  t.equal(lines.length, 2);
  for (const line of lines) t.match(JSON.parse(line), { level: "error", msg: "container does not exist" });
});

t.test("a missing runc binary is a clear failure", async (t) => {
  const f = await runcFixture(t);
  const runc = f.makeRunc({ binary: join(f.dir, "no-such-runc") });
  const err = await expectRuncError(t, runc.state(f.id()), "failed");
  t.equal(err.exitCode, undefined);
  t.match(err.message, /ENOENT/);
  t.same(await readdir(f.callTmp), []);
  t.ok(readFileSync("/proc/self/stat", "utf8"), "the test process is fine");
});
