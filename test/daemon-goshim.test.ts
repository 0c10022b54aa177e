// tsruncd drives any v2 shim: the same lifecycle as daemon-e2e, through Debian's Go
// containerd-shim-runc-v2 (`--runtime io.containerd.runc.v2`). One daemon for the file; the
// last test proves nothing is left, the Go shim's socket under /run/containerd/s and its runc
// state under /run/containerd/runc/<namespace> included. (Its terminals: daemon-tty.test.ts.)
import * as fs from "node:fs";
import * as path from "node:path";
import t from "tap";
import { goShimSocketPath } from "./helpers/cleanup.js";
import { daemonEnv } from "./helpers/daemon.js";
import { LineReader } from "./helpers/lines.js";
import { waitFor } from "./helpers/wait.js";

t.setTimeout(180_000);

const GO = ["--runtime", "io.containerd.runc.v2"];

const d = await daemonEnv(t);
await d.start();
const rootfs = d.rootfs("shared");

async function tsctl(args: string[], o: { input?: string } = {}) {
  const r = await d.spawnTsctl(args, o);
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** The Go shim's socket for a container (the harness checks it is gone at the end). */
function expectSocket(id: string): string {
  const s = goShimSocketPath(d.address, d.namespace, id);
  d.root.scope.sockets.add(s);
  return s;
}

async function tasks(): Promise<Array<{ id: string; pid: number; status: string; exitStatus?: number }>> {
  const r = await tsctl(["tasks", "ls", "--format", "json"]);
  if (r.exitCode !== 0) throw new Error(`tasks ls: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

t.test("run --rm through the Go shim: output, exit code, nothing left", async (t) => {
  expectSocket("g1");
  const r = await tsctl([
    "run",
    "--rm",
    ...GO,
    "--env",
    "WHO=go",
    "--rootfs",
    rootfs,
    "g1",
    "sh",
    "-c",
    'echo "out $WHO"; echo err >&2; exit 3',
  ]);
  t.equal(r.stdout, "out go\n");
  t.equal(r.stderr, "err\n");
  t.equal(r.exitCode, 3);
  const input = "one\ntwo\n";
  expectSocket("g2");
  const cat = await tsctl(["run", "-i", "--rm", ...GO, "--rootfs", rootfs, "g2", "cat"], { input });
  t.equal(cat.stdout, input, "run -i: piped input");
  t.equal(cat.exitCode, 0, cat.stderr);
  t.same(await tasks(), []);
  t.equal((await tsctl(["containers", "ls", "-q"])).stdout, "");
});

t.test("run -d through the Go shim, exec, pause, kill, rm", async (t) => {
  const id = "gd1";
  const sock = expectSocket(id);
  const run = await tsctl([
    "run",
    "-d",
    ...GO,
    "--rootfs",
    rootfs,
    id,
    "sh",
    "-c",
    "while :; do sleep 0.1; done",
  ]);
  t.equal(run.exitCode, 0, run.stderr);
  const task = (await tasks()).find((x) => x.id === id);
  t.equal(task?.status, "RUNNING");
  const pid = task?.pid ?? 0;
  t.ok(pid > 0 && fs.existsSync(`/proc/${pid}`), "a live init");
  t.ok(fs.existsSync(sock), "the Go shim serves on its own socket");
  const c = JSON.parse((await tsctl(["containers", "info", id])).stdout) as { runtime: { name: string } };
  t.equal(c.runtime.name, "io.containerd.runc.v2");

  const e1 = await tsctl([
    "tasks",
    "exec",
    "--exec-id",
    "e1",
    id,
    "sh",
    "-c",
    "echo hi; echo oops >&2; exit 6",
  ]);
  t.equal(e1.stdout, "hi\n");
  t.equal(e1.stderr, "oops\n");
  t.equal(e1.exitCode, 6, "the exec's exit status");
  const e2 = await tsctl(["tasks", "exec", "-i", "--exec-id", "e2", id, "cat"], { input: "to exec\n" });
  t.equal(e2.stdout, "to exec\n", "exec -i");
  t.equal(e2.exitCode, 0, e2.stderr);
  const ps = JSON.parse((await tsctl(["tasks", "ps", "--format", "json", id])).stdout) as Array<{
    pid: number;
  }>;
  t.ok(
    ps.some((p) => p.pid === pid),
    "tasks ps lists the init",
  );

  t.equal((await tsctl(["tasks", "pause", id])).exitCode, 0);
  t.equal((await tasks()).find((x) => x.id === id)?.status, "PAUSED");
  t.equal((await tsctl(["tasks", "resume", id])).exitCode, 0);
  t.equal((await tasks()).find((x) => x.id === id)?.status, "RUNNING");
  const m = await tsctl(["tasks", "metrics", id]);
  t.equal(m.exitCode, 0, m.stderr);
  t.match(m.stdout, /pids\.current\s+[1-9]/);

  t.equal((await tsctl(["tasks", "kill", "-s", "KILL", id])).exitCode, 0);
  const wait = await tsctl(["tasks", "wait", id]);
  t.equal(wait.stdout, "137\n", "tasks wait: 137");
  const stopped = await tsctl(["tasks", "ls"]);
  t.match(stopped.stdout, new RegExp(`\\n${id}\\s+${pid}\\s+STOPPED\\s+137\\n`), "STOPPED, EXIT 137");
  t.equal((await tsctl(["tasks", "rm", id])).exitCode, 0);
  t.equal((await tsctl(["containers", "rm", id])).exitCode, 0);
  t.same(await tasks(), []);
  await waitFor(() => !fs.existsSync(sock), { what: "the Go shim's socket removed" });
});

t.test("an attached run through the Go shim forwards SIGTERM", async (t) => {
  expectSocket("gs1");
  const child = d.spawnTsctl([
    "run",
    "--rm",
    ...GO,
    "--rootfs",
    rootfs,
    "gs1",
    "sh",
    "-c",
    'trap "exit 42" TERM; echo ready; while :; do sleep 0.1; done',
  ]);
  await new LineReader(child.stdout!).waitFor("ready", 15_000);
  child.kill("SIGTERM");
  const r = await child;
  t.equal(r.exitCode, 42, String(r.stderr));
  t.same(await tasks(), []);
});

t.test("through the Go shim, a command that does not exist: one line, nothing left", async (t) => {
  expectSocket("gx1");
  const r = await tsctl(["run", "--rm", ...GO, "--rootfs", rootfs, "gx1", "/no/such/binary"]);
  t.equal(r.exitCode, 1);
  t.match(r.stderr, /^tsctl: [^\n]*no such file or directory\n$/, "one line");
  t.equal((await tsctl(["containers", "ls", "-q"])).stdout, "", "--rm removed the container");
});

t.test("nothing is left", async (t) => {
  t.same(await tasks(), [], "no task");
  t.equal((await tsctl(["containers", "ls", "-q"])).stdout, "", "no container");
  const bundles = path.join(d.root.path, "state", d.namespace);
  t.same(fs.existsSync(bundles) ? fs.readdirSync(bundles) : [], [], "no bundle");
  await d.stop();
  await d.finish(t); // no process, bundle or runc state; the sweep forces nothing; no leak
});
