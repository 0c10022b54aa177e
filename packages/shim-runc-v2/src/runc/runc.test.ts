// The container lifecycle through the driver, with real runc and a busybox rootfs:
// create (stdio to files and to a fifo), start, state, ps, kill (with and without --all), delete.

import { constants, openSync, readFileSync } from "node:fs";
import { open, readdir, readFile, writeFile } from "node:fs/promises";
import { Socket } from "node:net";
import { join } from "node:path";
import { execa } from "execa";
import t from "tap";
import { isRuncError } from "./runc-errors.js";
import { alive, expectRuncError, RUNC, runcFixture, waitFor } from "./runc-fixture.js";

t.test("create with stdio files, start, state, the output arrives, delete", async (t) => {
  const f = await runcFixture(t);
  const id = f.id();
  const bundle = await f.bundle(id, {
    args: ["sh", "-c", "echo out; echo err >&2; read line; echo got:$line"],
  });
  const stdinFile = join(f.dir, "stdin.txt");
  await writeFile(stdinFile, "hello\n");
  const out = join(f.dir, "out.txt");
  const err = join(f.dir, "err.txt");
  const pidFile = join(f.dir, `${id}.pid`);

  const { pid } = await f.runc.create(id, bundle, {
    pidFile,
    detach: true,
    stdio: { stdin: { path: stdinFile }, stdout: { path: out }, stderr: { path: err } },
  });
  t.equal(Number(readFileSync(pidFile, "utf8")), pid, "create returns the pid from the pid file");

  const created = await f.runc.state(id);
  t.equal(created.id, id);
  t.equal(created.status, "created");
  t.equal(created.pid, pid);
  t.equal(created.bundle, bundle);
  t.equal(created.rootfs, f.rootfs);
  t.match(created.created, /^\d{4}-\d\d-\d\dT/);
  t.same(created.annotations, {});
  t.equal(await readFile(out, "utf8"), "", "nothing runs before start");

  await f.runc.start(id);
  await waitFor("container exit", async () => (await f.runc.state(id)).status === "stopped");
  t.equal(await readFile(out, "utf8"), "out\ngot:hello\n", "stdout and stdin reached the container");
  t.equal(await readFile(err, "utf8"), "err\n", "stderr reached its file");
  const stopped = await f.runc.state(id);
  t.equal(stopped.pid, 0);

  await f.runc.delete(id);
  await expectRuncError(t, f.runc.state(id), "not-found", "deleted");
  t.same(f.leftoverCgroups(id), [], "runc delete removed the cgroups");
  t.same(await readdir(f.callTmp), [], "every call removed its temp dir");
});

t.test("create with stdout on a fifo: runc returns while the container still writes", async (t) => {
  const f = await runcFixture(t);
  const id = f.id();
  const bundle = await f.bundle(id, {
    args: ["sh", "-c", "echo first; sleep 0.5; echo second"],
  });
  const fifo = join(f.dir, "stdout.fifo");
  await execa("mkfifo", [fifo]);
  // The reader first (non-blocking), then the writer end runc hands to the container.
  const reader = new Socket({
    fd: openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK),
    writable: false,
  });
  const writer = await open(fifo, constants.O_WRONLY);
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    reader.on("data", (c: Buffer) => chunks.push(c));
    reader.on("end", resolve);
    reader.on("error", reject);
  });
  done.catch(() => {}); // awaited below; never an unhandled rejection
  t.teardown(() => reader.destroy());

  const pidFile = join(f.dir, `${id}.pid`);
  // The [stdin, stdout, stderr] form, with fd numbers the caller owns.
  const { pid } = await f.runc.create(id, bundle, { pidFile, stdio: ["ignore", writer.fd, writer.fd] });
  await writer.close(); // the container holds its own copy now
  await f.runc.start(id);
  t.ok(alive(pid), "start returned while the container is still running");
  await done; // EOF: the container, the last writer, has exited
  t.equal(Buffer.concat(chunks).toString(), "first\nsecond\n");
  await waitFor("stopped", async () => (await f.runc.state(id)).status === "stopped");
  await f.runc.delete(id, { force: true });
  t.same(f.leftoverCgroups(id), []);
});

t.test("running container: state, ps, kill SIGKILL, delete", async (t) => {
  const f = await runcFixture(t);
  const id = f.id();
  const bundle = await f.bundle(id, { args: ["sleep", "1000"] });
  const { pid } = await f.runc.create(id, bundle, { pidFile: join(f.dir, "pid") });
  await f.runc.start(id);
  const st = await f.runc.state(id);
  t.equal(st.status, "running");
  t.equal(st.pid, pid);
  t.same(await f.runc.ps(id), [pid], "ps lists the init");

  const notStopped = await expectRuncError(
    t,
    f.runc.delete(id),
    "invalid-state",
    "a running one needs --force",
  );
  t.equal(notStopped.code, 9);
  await f.runc.kill(id, 9);
  await waitFor("init exit", () => !alive(pid));
  await waitFor("stopped", async () => (await f.runc.state(id)).status === "stopped");
  t.same(await f.runc.ps(id), [], "ps of a stopped container is empty");
  await f.runc.delete(id);
  t.same(f.leftoverCgroups(id), []);
});

t.test("kill --all signals every process of the container", async (t) => {
  const f = await runcFixture(t);
  const id = f.id();
  // The init, pid 1 of its namespace without a SIGTERM handler, ignores SIGTERM from outside:
  // only --all reaches the sleeps.
  const bundle = await f.bundle(id, {
    args: ["sh", "-c", "sleep 1000 & sleep 1000 & while true; do sleep 0.1; done"],
  });
  const { pid } = await f.runc.create(id, bundle, { pidFile: join(f.dir, "pid") });
  await f.runc.start(id);
  let pids: number[] = [];
  await waitFor("the children", async () => {
    pids = await f.runc.ps(id);
    return pids.length >= 4;
  });
  const cmdline = (p: number) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, "utf8");
    } catch {
      return ""; // a short-lived `sleep 0.1` that is already gone
    }
  };
  const sleepers = pids.filter((p) => p !== pid && cmdline(p) === "sleep\u00001000\u0000");
  t.equal(sleepers.length, 2, "two background sleeps");

  await f.runc.kill(id, 15, { all: true });
  await waitFor("the sleeps die", () => sleepers.every((p) => !alive(p)));
  t.ok(alive(pid), "the init ignored SIGTERM");
  await f.runc.kill(id, 9, { all: true });
  await waitFor("init exit", () => !alive(pid));
  await waitFor("stopped", async () => (await f.runc.state(id)).status === "stopped");
  await f.runc.delete(id, { force: true });
  t.same(f.leftoverCgroups(id), []);
});

t.test("delete --force removes a running container and its cgroups", async (t) => {
  const f = await runcFixture(t);
  const id = f.id();
  const bundle = await f.bundle(id, { args: ["sleep", "1000"] });
  const { pid } = await f.runc.create(id, bundle, { pidFile: join(f.dir, "pid") });
  await f.runc.start(id);
  t.not(f.leftoverCgroups(id), [], "runc made cgroups");
  await f.runc.delete(id, { force: true });
  await waitFor("init exit", () => !alive(pid));
  const err = await f.runc.state(id).catch((e: unknown) => e);
  t.ok(isRuncError(err, "not-found"));
  t.same(f.leftoverCgroups(id), []);
  // The driver's runc is the one the fixture checks with.
  const raw = await execa(RUNC, ["--root", f.root, "list", "--format", "json"]);
  t.notMatch(raw.stdout, id);
});

t.test("create for a never-started container, then delete --force", async (t) => {
  const f = await runcFixture(t);
  const id = f.id();
  const bundle = await f.bundle(id, { args: ["true"] });
  const { pid } = await f.runc.create(id, bundle, { pidFile: join(f.dir, "pid"), noNewKeyring: true });
  t.ok(alive(pid), "the init waits for start");
  await f.runc.delete(id, { force: true });
  await waitFor("init exit", () => !alive(pid));
  t.same(f.leftoverCgroups(id), []);
});
