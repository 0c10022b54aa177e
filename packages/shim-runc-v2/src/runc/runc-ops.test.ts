// Operations on a running container through the driver, with real runc: pause/resume, update,
// events --stats, exec with a process spec, a console socket; features and version.

import { existsSync, readFileSync } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { execa } from "execa";
import t from "tap";
import { alive, expectRuncError, RUNC, runcFixture, waitFor } from "./runc-fixture.js";
import type { ProcessSpec } from "./runc-types.js";

const PATH_ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];

async function runningContainer(t: Parameters<typeof runcFixture>[0], args = ["sleep", "1000"]) {
  const f = await runcFixture(t);
  const id = f.id();
  const bundle = await f.bundle(id, { args });
  const { pid } = await f.runc.create(id, bundle, { pidFile: join(f.dir, "init.pid") });
  await f.runc.start(id);
  return { f, id, pid, bundle };
}

t.test("pause and resume", async (t) => {
  const { f, id, pid } = await runningContainer(t);
  await f.runc.pause(id);
  t.equal((await f.runc.state(id)).status, "paused");
  t.same(await f.runc.ps(id), [pid], "ps works on a paused container");
  await expectRuncError(t, f.runc.pause(id), "not-running", "pausing twice: runc says it is not running");
  await f.runc.resume(id);
  t.equal((await f.runc.state(id)).status, "running");
  const err = await expectRuncError(t, f.runc.resume(id), "invalid-state", "resume of a running container");
  t.equal(err.message, "container not paused");
  // A paused container can be force-deleted: runc thaws and kills it.
  await f.runc.pause(id);
  await f.runc.delete(id, { force: true });
  await waitFor("init exit", () => !alive(pid));
  t.same(f.leftoverCgroups(id), []);
});

t.test("update: pids and memory limits land in the cgroup and in the stats", async (t) => {
  const { f, id } = await runningContainer(t);
  await f.runc.update(id, { pids: { limit: 20 }, memory: { limit: 64 * 1024 * 1024 } });
  const dirs = f.cgroupDirs(id);
  const pidsDir = dirs.find((d) => existsSync(join(d, "pids.max")));
  t.ok(pidsDir, "the pids cgroup exists");
  t.equal(readFileSync(join(pidsDir!, "pids.max"), "utf8").trim(), "20");
  const memV1 = dirs.find((d) => existsSync(join(d, "memory.limit_in_bytes")));
  const memV2 = dirs.find((d) => existsSync(join(d, "memory.max")));
  const memFile = memV1 ? join(memV1, "memory.limit_in_bytes") : join(memV2!, "memory.max");
  t.equal(readFileSync(memFile, "utf8").trim(), String(64 * 1024 * 1024));

  const stats = await f.runc.events(id, { stats: true });
  t.equal(stats.pids?.limit, 20);
  t.equal(stats.memory?.usage?.limit, 64 * 1024 * 1024);

  // The JSON text form, as the shim may get it from containerd.
  await f.runc.update(id, '{"pids":{"limit":30}}');
  t.equal(readFileSync(join(pidsDir!, "pids.max"), "utf8").trim(), "30");
  await expectRuncError(t, f.runc.update(id, "{not json"), "invalid-argument");
  await expectRuncError(t, f.runc.update(id, "[1]"), "invalid-argument");
  await f.runc.delete(id, { force: true });
  t.same(f.leftoverCgroups(id), []);
});

t.test("events --stats: cpu, memory and pids numbers", async (t) => {
  const { f, id } = await runningContainer(t, [
    "sh",
    "-c",
    "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1000",
  ]);
  await waitFor("some cpu time", async () => ((await f.runc.stats(id)).cpu?.usage?.total ?? 0) > 1_000_000);
  const stats = await f.runc.events(id, { stats: true });
  t.ok((stats.cpu?.usage?.total ?? 0) > 0, `cpu total ${stats.cpu?.usage?.total}`);
  t.ok(Array.isArray(stats.cpu?.usage?.percpu), "per-cpu usage");
  t.ok((stats.memory?.usage?.usage ?? 0) > 0, `memory usage ${stats.memory?.usage?.usage}`);
  t.ok((stats.pids?.current ?? 0) >= 1, `pids ${stats.pids?.current}`);
  await f.runc.kill(id, 9);
  await waitFor("stopped", async () => (await f.runc.state(id)).status === "stopped");
  await expectRuncError(t, f.runc.stats(id), "not-running", "no stats of a stopped container");
  await f.runc.delete(id);
});

t.test("exec with a process spec: output arrives, the process exits, the spec file is gone", async (t) => {
  const { f, id } = await runningContainer(t);
  const spec: ProcessSpec = {
    args: ["sh", "-c", "echo from-exec; echo to-err >&2; cat; exit 3"],
    cwd: "/",
    env: PATH_ENV,
    user: { uid: 0, gid: 0 },
    terminal: false,
  };
  const input = join(f.dir, "exec-in");
  await writeFile(input, "piped-in\n");
  const out = join(f.dir, "exec-out");
  const err = join(f.dir, "exec-err");
  const pidFile = join(f.dir, "exec.pid");
  const { pid } = await f.runc.exec(id, spec, {
    pidFile,
    detach: true,
    stdio: { stdin: { path: input }, stdout: { path: out }, stderr: { path: err } },
  });
  t.equal(Number(readFileSync(pidFile, "utf8")), pid);
  await waitFor("exec exit", () => !alive(pid));
  t.equal(await readFile(out, "utf8"), "from-exec\npiped-in\n");
  t.equal(await readFile(err, "utf8"), "to-err\n");
  t.same(await readdir(f.callTmp), [], "the process spec and the call's log were removed");

  // A long-running exec: runc returns while it runs, and it is one of the container's pids.
  const sleeper = await f.runc.exec(id, JSON.stringify({ ...spec, args: ["sleep", "1000"] }), {
    pidFile: join(f.dir, "exec2.pid"),
  });
  t.ok(alive(sleeper.pid));
  t.ok((await f.runc.ps(id)).includes(sleeper.pid), "ps lists the exec");
  await f.runc.kill(id, 9, { all: true });
  await waitFor("exec killed", () => !alive(sleeper.pid));
  await waitFor("stopped", async () => (await f.runc.state(id)).status === "stopped");
  await f.runc.delete(id);
  t.same(f.leftoverCgroups(id), []);
});

t.test("exec failures carry runc's message", async (t) => {
  const { f, id } = await runningContainer(t);
  const spec: ProcessSpec = { args: ["no-such-binary"], cwd: "/", env: PATH_ENV, user: { uid: 0, gid: 0 } };
  const err = await expectRuncError(t, f.runc.exec(id, spec, { pidFile: join(f.dir, "x.pid") }), "failed");
  t.match(
    err.message,
    /exec failed: unable to start container process: exec: "no-such-binary": executable file not found in \$PATH/,
  );
  t.equal(err.exitCode, 255);
  t.equal(err.command, "exec");
  await expectRuncError(
    t,
    f.runc.exec(id, '{"args":', { pidFile: join(f.dir, "x.pid") }),
    "invalid-argument",
  );
  await expectRuncError(t, f.runc.exec(id, spec, { pidFile: "relative.pid" }), "invalid-argument");
  await f.runc.kill(id, 9);
  await waitFor("stopped", async () => (await f.runc.state(id)).status === "stopped");
  const stopped = await expectRuncError(
    t,
    f.runc.exec(id, { ...spec, args: ["true"] }, { pidFile: join(f.dir, "y.pid") }),
    "stopped",
  );
  t.equal(stopped.message, "exec failed: cannot exec in a stopped container");
  t.same(await readdir(f.callTmp), []);
  await f.runc.delete(id);
});

t.test("create with a console socket: runc connects and sends the pty master", async (t) => {
  const f = await runcFixture(t);
  const id = f.id();
  const bundle = await f.bundle(id, { args: ["sh"], terminal: true });
  const socketPath = join(f.dir, "console.sock");
  // runc sends the pty master with SCM_RIGHTS. Node cannot take the fd (that needs the native
  // addon): reading the message discards it, the pty hangs up and the init dies of SIGHUP
  // ("error during container init"). So the connection stays paused while runc creates: the fd
  // is in flight in the socket and keeps the master open.
  const server = createServer({ pauseOnConnect: true });
  const connection = new Promise<Socket>((resolve) => server.once("connection", resolve));
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  t.teardown(() => server.close());
  const { pid } = await f.runc.create(id, bundle, { pidFile: join(f.dir, "pid"), consoleSocket: socketPath });
  const conn = await connection;
  t.teardown(() => conn.destroy());
  t.equal((await f.runc.state(id)).status, "created");
  t.ok(alive(pid));
  const name = await new Promise<string>((resolve) => {
    let text = "";
    conn.on("data", (d: Buffer) => {
      text += d.toString();
    });
    conn.on("end", () => resolve(text));
    conn.resume();
  });
  t.equal(name, "/dev/ptmx", "the message names the pty master");
  await f.runc.delete(id, { force: true });
  await waitFor("init exit", () => !alive(pid));
  t.same(f.leftoverCgroups(id), []);
});

t.test("features() and version()", async (t) => {
  const f = await runcFixture(t);
  const version = await f.runc.version();
  const raw = (await execa(RUNC, ["--version"])).stdout;
  t.ok(raw.startsWith(`runc version ${version.version}`), version.version);
  t.match(version.spec ?? "", /^1\./);
  const features = await f.runc.features();
  t.ok(features, "runc 1.1 has the experimental features command");
  t.match(features?.ociVersionMin ?? "", /^1\./);
  t.ok(features?.linux?.namespaces?.includes("pid"));
  t.ok(features?.hooks?.includes("createRuntime"));
  t.equal(features?.annotations?.["org.opencontainers.runc.version"], version.version);
  t.same(await readdir(f.callTmp), []);
});
