// The shim's init lifecycle driven through our ttrpc client, without containerd: fine-grained
// checks of replies, status codes, events and cleanup that are awkward to see through ctr.
import * as fs from "node:fs";
import * as path from "node:path";
import { Topics, tasktypes } from "@tsrunc/protocol";
import { Code } from "@tsrunc/ttrpc";
import t from "tap";
import { alive, shimEnv } from "./helpers/shim.js";
import { waitFor } from "./helpers/wait.js";

t.test("create, start, output, exit code, delete, shutdown", async (t) => {
  const env = await shimEnv(t);
  const bundle = await env.bundle("c1", ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]);
  const { task, address } = await env.start(bundle, "c1");
  t.match(address, /^unix:\/\//);
  t.equal(fs.readFileSync(path.join(bundle, "address"), "utf8"), address);
  const shimPid = env.shimPids()[0]!;
  t.ok(alive(shimPid), "the server runs");

  const stdout = await env.fifoReader("c1-stdout");
  const stderr = await env.fifoReader("c1-stderr");
  const created = await task.create({ id: "c1", bundle, stdout: stdout.path, stderr: stderr.path });
  t.ok(created.pid > 0, "create returns the init pid");
  const state = await task.state({ id: "c1" });
  t.equal(state.status, tasktypes.Status.CREATED);
  t.equal(state.pid, created.pid);

  const started = await task.start({ id: "c1" });
  t.equal(started.pid, created.pid);
  const waited = await task.wait({ id: "c1" });
  t.equal(waited.exitStatus, 3);
  t.equal(await stdout.text, "out\n");
  t.equal(await stderr.text, "err\n");
  t.equal((await task.state({ id: "c1" })).status, tasktypes.Status.STOPPED);

  await t.rejects(task.kill({ id: "c1", signal: 9 }), { code: Code.NotFound }, "kill after exit");
  const deleted = await task.delete({ id: "c1" });
  t.equal(deleted.exitStatus, 3);
  t.equal(deleted.pid, created.pid);
  await t.rejects(task.state({ id: "c1" }), { code: Code.NotFound }, "gone after delete");

  await waitFor("events", () => env.events.length >= 4);
  t.same(
    env.events.map((e) => e.topic),
    [Topics.taskCreate, Topics.taskStart, Topics.taskExit, Topics.taskDelete],
    "events in order",
  );
  t.ok(env.events.every((e) => e.namespace === env.namespace));

  await task.shutdown({ id: "c1" }).catch(() => {});
  await waitFor("shim exit", () => !alive(shimPid));
  t.notOk(fs.existsSync(address.slice("unix://".length)), "socket removed");
});

t.test("kill a running init: SIGKILL gives 137, and wrong transitions fail", async (t) => {
  const env = await shimEnv(t);
  const bundle = await env.bundle("k1", ["/bin/sleep", "1000"]);
  const { task } = await env.start(bundle, "k1");
  await t.rejects(task.start({ id: "nope" }), { code: Code.NotFound });
  await t.rejects(task.create({ id: "../x", bundle }), { code: Code.InvalidArgument });
  await t.rejects(task.create({ id: "k1", bundle: "/etc" }), { code: Code.InvalidArgument });
  await task.create({ id: "k1", bundle });
  await t.rejects(task.create({ id: "k1", bundle }), { code: Code.AlreadyExists });
  await task.start({ id: "k1" });
  await t.rejects(task.start({ id: "k1" }), { code: Code.FailedPrecondition }, "start twice");
  await t.rejects(task.delete({ id: "k1" }), { code: Code.FailedPrecondition }, "delete while running");
  const pids = await task.pids({ id: "k1" });
  t.equal(pids.processes.length, 1);
  const waits = [task.wait({ id: "k1" }), task.wait({ id: "k1" }), task.wait({ id: "k1" })];
  await task.kill({ id: "k1", signal: 9 });
  for (const w of await Promise.all(waits)) t.equal(w.exitStatus, 137, "every waiter sees 137");
  await task.delete({ id: "k1" });
  await task.shutdown({ id: "k1" }).catch(() => {});
});

t.test("SIGTERM to an init that traps it gives 143", async (t) => {
  const env = await shimEnv(t);
  const bundle = await env.bundle("term1", [
    "/bin/sh",
    "-c",
    "trap 'exit 143' TERM; while true; do sleep 0.05; done",
  ]);
  const { task } = await env.start(bundle, "term1");
  await task.create({ id: "term1", bundle });
  await task.start({ id: "term1" });
  await new Promise((r) => setTimeout(r, 200));
  await task.kill({ id: "term1", signal: 15, all: false });
  t.equal((await task.wait({ id: "term1" })).exitStatus, 143);
  await task.delete({ id: "term1" });
});

t.test("stdin reaches the process and CloseIO ends it", async (t) => {
  const env = await shimEnv(t);
  const bundle = await env.bundle("in1", ["/bin/cat"]);
  const { task } = await env.start(bundle, "in1");
  const stdin = await env.fifoWriter("in1-stdin");
  const stdout = await env.fifoReader("in1-stdout");
  await task.create({ id: "in1", bundle, stdin: stdin.path, stdout: stdout.path });
  await task.start({ id: "in1" });
  const w = stdin.open();
  w.end("hello through cat\n");
  // containerd sends CloseIO once its copy of stdin is done; only then may EOF reach cat.
  await task.closeIO({ id: "in1", stdin: true });
  t.equal(await stdout.text, "hello through cat\n");
  t.equal((await task.wait({ id: "in1" })).exitStatus, 0);
  await task.delete({ id: "in1" });
});

t.test("a rootfs given as a bind mount is mounted for the container and unmounted on delete", async (t) => {
  const env = await shimEnv(t);
  const bundle = await env.bundle("m1", ["/bin/sh", "-c", "test -x /bin/busybox && echo mounted"]);
  const source = path.join(env.root.path, "rootfs-src");
  fs.renameSync(path.join(bundle, "rootfs"), source);
  fs.mkdirSync(path.join(bundle, "rootfs"));
  const { task } = await env.start(bundle, "m1");
  const stdout = await env.fifoReader("m1-stdout");
  await task.create({
    id: "m1",
    bundle,
    stdout: stdout.path,
    rootfs: [{ type: "bind", source, options: ["rbind", "rw"] }],
  });
  t.ok(fs.readFileSync("/proc/self/mountinfo", "utf8").includes(path.join(bundle, "rootfs")), "mounted");
  await task.start({ id: "m1" });
  t.equal(await stdout.text, "mounted\n");
  await task.wait({ id: "m1" });
  await task.delete({ id: "m1" });
  t.notOk(fs.readFileSync("/proc/self/mountinfo", "utf8").includes(path.join(bundle, "rootfs")), "unmounted");
});
