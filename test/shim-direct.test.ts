// The shim's init lifecycle driven through our ttrpc client, without containerd: fine-grained
// checks of replies, status codes, events and cleanup that are awkward to see through ctr.
import * as fs from "node:fs";
import * as path from "node:path";
import {
  Any,
  events,
  OciProcessType,
  packAny,
  runcoptions,
  Topics,
  task as task_,
  tasktypes,
} from "@tsrunc/protocol";
import { Code } from "@tsrunc/ttrpc";
import { execa } from "execa";
import t from "tap";
import { alive, SHIM_BIN, shimEnv } from "./helpers/shim.js";
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
  // containerd runs the delete verb after every shim exit; after a clean Delete it answers from
  // what the server left, with the same status.
  const verb = await execa(
    "env",
    [
      "-i",
      `PATH=${process.env.PATH}`,
      SHIM_BIN,
      "-namespace",
      env.namespace,
      "-address",
      env.address,
      "-id",
      "c1",
      "-bundle",
      bundle,
      "delete",
    ],
    { encoding: "buffer" },
  );
  t.equal(task_.DeleteResponse.decode(verb.stdout).exitStatus, 3, "delete verb reports the real exit status");

  await waitFor(() => env.events.length >= 4, { what: "events" });
  t.same(
    env.events.map((e) => e.topic),
    [Topics.taskCreate, Topics.taskStart, Topics.taskExit, Topics.taskDelete],
    "events in order",
  );
  t.ok(env.events.every((e) => e.namespace === env.namespace));

  await task.shutdown({ id: "c1" }).catch(() => {});
  await waitFor(() => !alive(shimPid), { what: "shim exit" });
  t.notOk(fs.existsSync(address.slice("unix://".length)), "socket removed");
});

t.test("kill a running init: SIGKILL gives 137, and wrong transitions fail", async (t) => {
  const env = await shimEnv(t);
  const bundle = await env.bundle("k1", ["/bin/sleep", "1000"]);
  const { task } = await env.start(bundle, "k1");
  await t.rejects(task.start({ id: "nope" }), { code: Code.NotFound });
  await t.rejects(task.create({ id: "../x", bundle }), { code: Code.InvalidArgument });
  await t.rejects(task.create({ id: "k1", bundle: "/etc" }), { code: Code.InvalidArgument });
  // Found by the fuzz campaign: a second container must not be created in this container's bundle.
  await t.rejects(
    task.create({ id: "k2", bundle }),
    { code: Code.InvalidArgument },
    "another id in k1's bundle",
  );
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

function processSpec(args: string[], terminal = false) {
  return packAny(OciProcessType, {
    args,
    cwd: "/",
    env: ["PATH=/bin:/usr/bin"],
    terminal,
    user: { uid: 0, gid: 0 },
  });
}

t.test("exec: added, started, output, exit codes, events, delete; 20 at once", async (t) => {
  const env = await shimEnv(t);
  const bundle = await env.bundle("e1", ["/bin/sleep", "1000"]);
  const { task } = await env.start(bundle, "e1");
  await task.create({ id: "e1", bundle });
  await t.rejects(
    task
      .exec({ id: "e1", execId: "x1", spec: processSpec(["/bin/true"]) })
      .then(() => task.start({ id: "e1", execId: "x1" })),
    { code: Code.FailedPrecondition },
    "exec before the init runs cannot start",
  );
  await task.delete({ id: "e1", execId: "x1" });
  await task.start({ id: "e1" });

  const out = await env.fifoReader("x2-stdout");
  await task.exec({
    id: "e1",
    execId: "x2",
    stdout: out.path,
    spec: processSpec(["/bin/sh", "-c", "echo from exec; exit 5"]),
  });
  await t.rejects(task.exec({ id: "e1", execId: "x2", spec: processSpec(["/bin/true"]) }), {
    code: Code.AlreadyExists,
  });
  await t.rejects(task.exec({ id: "e1", execId: "x3", spec: { typeUrl: "nope", value: new Uint8Array() } }), {
    code: Code.InvalidArgument,
  });
  const started = await task.start({ id: "e1", execId: "x2" });
  t.ok(started.pid > 0);
  t.equal((await task.wait({ id: "e1", execId: "x2" })).exitStatus, 5);
  t.equal(await out.text, "from exec\n");
  t.equal((await task.state({ id: "e1", execId: "x2" })).status, tasktypes.Status.STOPPED);
  t.equal((await task.delete({ id: "e1", execId: "x2" })).exitStatus, 5);
  await t.rejects(task.state({ id: "e1", execId: "x2" }), { code: Code.NotFound });

  const ids = Array.from({ length: 20 }, (_, i) => `p${i}`);
  await Promise.all(
    ids.map((id, i) =>
      task.exec({ id: "e1", execId: id, spec: processSpec(["/bin/sh", "-c", `exit ${i + 1}`]) }),
    ),
  );
  await Promise.all(ids.map((id) => task.start({ id: "e1", execId: id })));
  const codes = await Promise.all(ids.map((id) => task.wait({ id: "e1", execId: id })));
  t.same(
    codes.map((c) => c.exitStatus),
    ids.map((_, i) => i + 1),
    "20 concurrent execs report their own exit codes",
  );

  const sleeper = await task
    .exec({ id: "e1", execId: "s1", spec: processSpec(["/bin/sleep", "1000"]) })
    .then(() => task.start({ id: "e1", execId: "s1" }));
  const pids = await task.pids({ id: "e1" });
  t.ok(
    pids.processes.some((p) => p.pid === sleeper.pid && p.info),
    "pids marks the exec's process",
  );
  await task.kill({ id: "e1", execId: "s1", signal: 9 });
  t.equal((await task.wait({ id: "e1", execId: "s1" })).exitStatus, 137);

  await task.kill({ id: "e1", signal: 9 });
  await task.wait({ id: "e1" });
  await t.rejects(
    task.exec({ id: "e1", execId: "late", spec: processSpec(["/bin/true"]) }),
    { code: Code.FailedPrecondition },
    "exec into a stopped container",
  );
  await waitFor(
    () =>
      env.events.some(
        (e) => e.topic === Topics.taskExit && e.event && events.TaskExit.decode(e.event.value).id === "e1",
      ),
    { what: "events" },
  );
  const x2 = env.events
    .filter(
      (e) =>
        e.event &&
        "execId" in (decodeEvent(e) ?? {}) &&
        (decodeEvent(e) as { execId: string }).execId === "x2",
    )
    .map((e) => e.topic);
  t.same(x2, [Topics.taskExecAdded, Topics.taskExecStarted], "exec-added then exec-started");
  const exitOfX2 = env.events.findIndex(
    (e) => e.topic === Topics.taskExit && events.TaskExit.decode(e.event!.value).id === "x2",
  );
  const startOfX2 = env.events.findIndex(
    (e) =>
      e.topic === Topics.taskExecStarted && events.TaskExecStarted.decode(e.event!.value).execId === "x2",
  );
  t.ok(startOfX2 >= 0 && exitOfX2 > startOfX2, "exit after exec-started");
  await task.delete({ id: "e1" });
});

function decodeEvent(e: {
  topic: string;
  event?: { typeUrl: string; value: Uint8Array };
}): object | undefined {
  if (!e.event) return undefined;
  if (e.topic === Topics.taskExecAdded) return events.TaskExecAdded.decode(e.event.value);
  if (e.topic === Topics.taskExecStarted) return events.TaskExecStarted.decode(e.event.value);
  return undefined;
}

t.test("terminal: output through the pty, input reaches the shell, resize shows in stty", async (t) => {
  const env = await shimEnv(t);
  const bundle = await env.bundle("tty1", ["/bin/sh"], (spec) => {
    (spec.process as { terminal: boolean }).terminal = true;
  });
  const { task } = await env.start(bundle, "tty1");
  const stdin = await env.fifoWriter("tty1-stdin");
  const stdout = await env.fifoReader("tty1-stdout");
  await task.create({ id: "tty1", bundle, terminal: true, stdin: stdin.path, stdout: stdout.path });
  await task.resizePty({ id: "tty1", width: 91, height: 37 });
  await task.start({ id: "tty1" });
  const w = stdin.open();
  w.write("stty size; echo marker-$((6*7))\n");
  w.write("exit 4\n");
  t.equal((await task.wait({ id: "tty1" })).exitStatus, 4);
  const text = await stdout.text;
  t.match(text, /37 91/, "the resize reached the terminal");
  t.match(text, /marker-42/, "typed input ran in the shell");
  // ctr's last resize races the exit (its master may be closed by then): OK, as the Go shim.
  await task.resizePty({ id: "tty1", width: 80, height: 24 });
  t.pass("a resize after the exit is answered OK");
  w.destroy();
  await task.delete({ id: "tty1" });
});

t.test("exec with a terminal", async (t) => {
  const env = await shimEnv(t);
  const bundle = await env.bundle("tty2", ["/bin/sleep", "1000"]);
  const { task } = await env.start(bundle, "tty2");
  await task.create({ id: "tty2", bundle });
  await task.start({ id: "tty2" });
  const out = await env.fifoReader("tx-stdout");
  await task.exec({
    id: "tty2",
    execId: "tx",
    terminal: true,
    stdout: out.path,
    spec: processSpec(["/bin/sh", "-c", "tty && test -t 0 && echo is-a-tty"], true),
  });
  await task.start({ id: "tty2", execId: "tx" });
  t.equal((await task.wait({ id: "tty2", execId: "tx" })).exitStatus, 0);
  t.match(await out.text, /\/dev\/pts\/\d+[\s\S]*is-a-tty/);
  await task.delete({ id: "tty2", execId: "tx" });
  await task.kill({ id: "tty2", signal: 9 });
  await task.wait({ id: "tty2" });
  await task.delete({ id: "tty2" });
});

t.test("the ShimCgroup runtime option puts the server into that cgroup", async (t) => {
  const env = await shimEnv(t);
  const name = `tsrunc-shimcg-${env.namespace}`;
  const dirs = ["pids", "memory"].map((c) => path.join("/sys/fs/cgroup", c, name));
  for (const d of dirs) fs.mkdirSync(d);
  t.teardown(async () => {
    for (const pid of env.shimPids()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
    await waitFor(
      () => dirs.every((d) => fs.readFileSync(path.join(d, "cgroup.procs"), "utf8").trim() === ""),
      { what: "cgroups empty" },
    );
    for (const d of dirs) fs.rmdirSync(d);
  });
  const bundle = await env.bundle("cg1", ["/bin/true"]);
  const options = Any.encode(packAny(runcoptions.Options, { shimCgroup: `/${name}` }));
  const started = await env.start(bundle, "cg1", options);
  await started.task.connect({ id: "cg1" }); // the server joins the cgroup before it serves
  const shimPid = env.shimPids()[0]!;
  for (const d of dirs) {
    t.ok(
      fs.readFileSync(path.join(d, "cgroup.procs"), "utf8").split("\n").includes(String(shimPid)),
      `in ${d}`,
    );
  }
  const bad = await env.bundle("cg2", ["/bin/true"]);
  const badOptions = Any.encode(packAny(runcoptions.Options, { shimCgroup: "/no/such/cgroup" }));
  // The server checks the cgroup as it starts: it logs why and exits instead of serving.
  const failed = await env.start(bad, "cg2", badOptions);
  await t.rejects(failed.task.connect({ id: "cg2" }), { code: Code.Unavailable });
  await waitFor(() => env.logs().includes("shim cgroup /no/such/cgroup does not exist"), {
    what: "the log says why",
  });
});
