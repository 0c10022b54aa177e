// The compiled tsctl as a person runs it: spawned, against nothing (one error line, exit 1) and
// against the in-process fake tsruncd (the run/exec/attach flows, listings, events).

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { events, packAny } from "@tsrunc/protocol";
import t from "tap";
import { FakeDaemon } from "../test-support.js";

const TSCTL = fileURLToPath(new URL("./main.js", import.meta.url));

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface Env {
  address: string;
  fifoDir: string;
}

function tsctl(
  env: Env,
  args: string[],
  o: {
    input?: string;
    extraEnv?: Record<string, string>;
    onStart?: (p: ReturnType<typeof spawn>) => void;
  } = {},
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const childEnv: Record<string, string | undefined> = { ...process.env };
    delete childEnv.TSRUNC_NAMESPACE;
    delete childEnv.TSRUNC_DEBUG;
    Object.assign(childEnv, { TSRUNC_ADDRESS: env.address, TSRUNC_FIFO_DIR: env.fifoDir }, o.extraEnv);
    const p = spawn(process.execPath, [TSCTL, ...args], { env: childEnv, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    p.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    p.on("error", reject);
    p.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
    if (o.input !== undefined) p.stdin.end(o.input);
    else p.stdin.end();
    o.onStart?.(p);
  });
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function setup(t: Tap) {
  const daemon = await FakeDaemon.start(t);
  const dir = mkdtempSync(join(tmpdir(), "tsctl-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const rootfs = join(dir, "rootfs");
  const { mkdirSync } = await import("node:fs");
  mkdirSync(rootfs);
  const env: Env = { address: daemon.path, fifoDir: join(dir, "fifo") };
  return { daemon, env, rootfs, fifoDir: env.fifoDir };
}
type Tap = { teardown(fn: () => unknown): void };

const methods = (d: FakeDaemon) => d.calls.map((c) => `${c.service.split(".").at(-1)}.${c.method}`);

t.test("nothing listening: exactly one line on stderr, exit 1", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tsctl-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bogus = join(dir, "no-daemon.sock");
  for (const args of [
    ["containers", "ls"],
    ["tasks", "ls"],
    ["run", "--rootfs", dir, "c1", "true"],
    ["events"],
  ]) {
    const r = await tsctl({ address: bogus, fifoDir: join(dir, "f") }, args);
    t.equal(r.code, 1, args.join(" "));
    t.equal(r.stdout, "");
    t.equal(r.stderr, `tsctl: cannot reach tsruncd at ${bogus}: is it running?\n`, args.join(" "));
  }
  const viaFlag = await tsctl({ address: "/elsewhere", fifoDir: dir }, ["--address", bogus, "c", "ls"]);
  t.equal(
    viaFlag.stderr,
    `tsctl: cannot reach tsruncd at ${bogus}: is it running?\n`,
    "--address beats the env",
  );
  const debug = await tsctl({ address: bogus, fifoDir: dir }, ["c", "ls"], {
    extraEnv: { TSRUNC_DEBUG: "1" },
  });
  t.equal(debug.code, 1);
  t.ok(debug.stderr.split("\n").length > 2, "a stack trace with TSRUNC_DEBUG=1");
  t.match(debug.stderr, /^tsctl: cannot reach/);
});

t.test("usage mistakes: one line, exit 2; images: exit 1", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tsctl-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const env = { address: join(dir, "x.sock"), fifoDir: dir };
  for (const [args, line] of [
    [["frobnicate"], "tsctl: no such command: frobnicate (see tsctl help)"],
    [["tasks", "kill", "--bogus", "x"], "tsctl: unknown option --bogus"],
    [["run", "--rootfs", dir], "tsctl: run needs a container ID"],
    [["tasks", "exec", "c1", "ls"], "tsctl: tasks exec needs --exec-id"],
  ] as const) {
    const r = await tsctl(env, [...args]);
    t.equal(r.code, 2, args.join(" "));
    t.equal(r.stderr, `${line}\n`);
  }
  const img = await tsctl(env, ["run", "docker.io/library/busybox:latest", "c1", "sh"]);
  t.equal(img.code, 1);
  t.match(img.stderr, /^tsctl: cannot reach tsruncd at .*x\.sock: is it running\?\n$/);
  const help = await tsctl(env, ["help", "run"]);
  t.equal(help.code, 0);
  t.match(help.stdout, /^Usage: tsctl run/);
});

t.test("run --rm: ctr's order of calls, output copied, everything removed", async (t) => {
  const { daemon, env, rootfs, fifoDir } = await setup(t);
  const r = await tsctl(env, [
    "run",
    "--rm",
    "--label",
    "app=x",
    "--rootfs",
    rootfs,
    "c1",
    "echo",
    "hello",
    "-t",
    "world",
  ]);
  t.equal(r.stderr, "");
  t.equal(r.code, 0);
  t.equal(r.stdout, "hello -t world\n");
  t.same(methods(daemon), [
    "Containers.Create",
    "Tasks.Create",
    "Tasks.Wait",
    "Tasks.Start",
    "Tasks.Delete",
    "Containers.Delete",
  ]);
  t.ok(daemon.calls.every((c) => c.namespace === "default"));
  const create = daemon.callsOf("Create")[0]?.request as {
    container: {
      id: string;
      runtime: { name: string };
      labels: Record<string, string>;
      spec: { value: Uint8Array };
    };
  };
  t.equal(create.container.runtime.name, "io.containerd.tsrunc.v2");
  t.same(create.container.labels, { app: "x" });
  const spec = JSON.parse(Buffer.from(create.container.spec.value).toString());
  t.equal(spec.root.path, rootfs);
  t.same(spec.process.args, ["echo", "hello", "-t", "world"]);
  t.equal(spec.linux.cgroupsPath, "/default/c1");
  t.same(spec.annotations, { app: "x" });
  const task = daemon.callsOf("Create")[1]?.request as {
    stdin: string;
    stdout: string;
    stderr: string;
    terminal: boolean;
    rootfs: unknown[];
  };
  t.equal(task.stdin, "", "no stdin without -i");
  t.match(task.stdout, new RegExp(`^${fifoDir}/default/c1-[A-Za-z0-9]{6}/c1-stdout$`));
  t.match(task.stderr, /c1-stderr$/);
  t.equal(task.terminal, false);
  t.same(task.rootfs, [], "no rootfs mounts with --rootfs");
  t.equal(daemon.containers.size, 0);
  t.same(readdirSync(join(fifoDir, "default")), [], "fifo directory removed");
});

t.test("run: exit status, stderr, kept container; a second run of the id is refused", async (t) => {
  const { daemon, env, rootfs } = await setup(t);
  const r = await tsctl(env, ["run", "--rootfs", rootfs, "c3", "exit", "3"]);
  t.equal(r.code, 3);
  t.ok(daemon.containers.has("default/c3"), "kept without --rm");
  t.equal(daemon.processes.size, 0, "the task is deleted, as ctr does");
  const dup = await tsctl(env, ["run", "--rm", "--rootfs", rootfs, "c3", "echo"]);
  t.equal(dup.code, 1);
  t.equal(dup.stderr, 'tsctl: container "c3": already exists\n');
  t.ok(daemon.containers.has("default/c3"), "--rm never removes a container it did not create");
  const err = await tsctl(env, ["run", "--rm", "--rootfs", rootfs, "e", "err", "bad", "thing"]);
  t.equal(err.stdout, "");
  t.equal(err.stderr, "bad thing\n");
  t.equal(err.code, 0);
});

t.test("run -i: stdin copied, CloseIO at its end", async (t) => {
  const { daemon, env, rootfs } = await setup(t);
  const r = await tsctl(env, ["run", "--rm", "-i", "--rootfs", rootfs, "cat1", "cat"], {
    input: "line 1\nline 2\n",
  });
  t.equal(r.stderr, "");
  t.equal(r.code, 0);
  t.equal(r.stdout, "line 1\nline 2\n");
  const task = daemon.callsOf("Create")[1]?.request as { stdin: string };
  t.match(task.stdin, /cat1-stdin$/);
  t.same(
    daemon.callsOf("CloseIO").map((c) => (c.request as { stdin: boolean }).stdin),
    [true],
  );
});

t.test("run -t without a terminal: stdin+stdout fifos only, terminal set", async (t) => {
  const { daemon, env, rootfs } = await setup(t);
  const r = await tsctl(env, ["run", "--rm", "-t", "--rootfs", rootfs, "tty1", "err", "to", "pty"]);
  t.equal(r.code, 0);
  t.equal(r.stdout, "to pty\n", "stderr arrives merged into stdout");
  const task = daemon.callsOf("Create")[1]?.request as { stdin: string; stderr: string; terminal: boolean };
  t.equal(task.terminal, true);
  t.equal(task.stderr, "");
  t.match(task.stdin, /tty1-stdin$/);
  const create = daemon.callsOf("Create")[0]?.request as { container: { spec: { value: Uint8Array } } };
  const spec = JSON.parse(Buffer.from(create.container.spec.value).toString());
  t.equal(spec.process.terminal, true);
  t.ok(spec.process.env.includes("TERM=xterm"));
});

t.test("run: signals are forwarded; exit 128+N", async (t) => {
  const { daemon, env, rootfs } = await setup(t);
  const r = await tsctl(env, ["run", "--rm", "--rootfs", rootfs, "s1", "sleep"], {
    onStart: (p) => {
      void until(() => daemon.callsOf("Start").length > 0, "Start").then(() => p.kill("SIGTERM"));
    },
  });
  t.equal(r.stderr, "");
  t.equal(r.code, 143);
  t.same(
    daemon.callsOf("Kill").map((c) => (c.request as { signal: number }).signal),
    [15],
  );
  t.equal(daemon.containers.size, 0);
});

t.test("run: --null-io, --log-uri and --runc-binary reach the daemon as ctr sends them", async (t) => {
  const { daemon, env, rootfs } = await setup(t);
  const n = await tsctl(env, ["run", "--rm", "--null-io", "--rootfs", rootfs, "n1", "echo", "lost"]);
  t.equal(n.code, 0);
  t.equal(n.stdout, "");
  t.match(daemon.callsOf("Create")[1]?.request, { stdin: "", stdout: "", stderr: "" });
  const l = await tsctl(env, [
    "run",
    "--rm",
    "--log-uri",
    "file:///var/log/x.log",
    "--rootfs",
    rootfs,
    "l1",
    "echo",
  ]);
  t.equal(l.code, 0);
  t.match(daemon.callsOf("Create")[3]?.request, {
    stdin: "",
    stdout: "file:///var/log/x.log",
    stderr: "file:///var/log/x.log",
  });
  const bad = await tsctl(env, ["run", "-t", "--null-io", "--rootfs", rootfs, "x", "echo"]);
  t.equal(bad.code, 2);
  t.equal(bad.stderr, "tsctl: -t and --null-io cannot be used together\n");
  const rb = await tsctl(env, [
    "run",
    "--rm",
    "--runc-binary",
    "/opt/crun",
    "--rootfs",
    rootfs,
    "r1",
    "echo",
  ]);
  t.equal(rb.code, 0);
  const c = daemon.callsOf("Create")[4]?.request as {
    container: { runtime: { options: { typeUrl: string } } };
  };
  t.equal(c.container.runtime.options.typeUrl, "containerd.runc.v1.Options");
  const task = daemon.callsOf("Create")[5]?.request as { options: { typeUrl: string; value: Uint8Array } };
  t.equal(task.options.typeUrl, "containerd.runc.v1.Options");
  t.ok(Buffer.from(task.options.value).includes("/opt/crun"));
});

t.test("run -d leaves the fifos for attach; ls, kill, rm, containers rm", async (t) => {
  const { daemon, env, rootfs, fifoDir } = await setup(t);
  const d = await tsctl(env, ["run", "-d", "--rootfs", rootfs, "bg", "sleep"]);
  t.equal(d.code, 0);
  t.equal(d.stdout, "");
  t.equal(d.stderr, "");
  t.notOk(methods(daemon).includes("Tasks.Wait"), "detached: nobody waits");
  t.equal(readdirSync(join(fifoDir, "default")).length, 1, "fifos left in place");

  const ls = await tsctl(env, ["tasks", "ls"]);
  t.match(ls.stdout, /^TASK\s+PID\s+STATUS\nbg\s+\d+\s+RUNNING\n$/);
  const lsj = JSON.parse((await tsctl(env, ["t", "ls", "--format", "json"])).stdout);
  t.match(lsj, [{ id: "bg", status: "RUNNING" }]);

  const notStopped = await tsctl(env, ["tasks", "rm", "bg"]);
  t.equal(notStopped.code, 1);
  t.equal(notStopped.stderr.split("\n").length, 2, "one line");
  t.match(notStopped.stderr, /^tsctl: task bg must be stopped before deletion: it is running/);
  const cnot = await tsctl(env, ["containers", "rm", "bg"]);
  t.equal(cnot.code, 1);
  t.match(cnot.stderr, /^tsctl: cannot remove container bg: its task is running/);

  // attach, then kill from another tsctl: attach ends with the task's status.
  const waitsBefore = daemon.callsOf("Wait").length;
  const attached = tsctl(env, ["tasks", "attach", "bg"]);
  await until(() => daemon.callsOf("Wait").length > waitsBefore, "attach's Wait");
  const k = await tsctl(env, ["tasks", "kill", "-s", "KILL", "--all", "bg"]);
  t.equal(k.code, 0);
  t.match(daemon.callsOf("Kill").at(-1)?.request, { containerId: "bg", signal: 9, all: true });
  const a = await attached;
  t.equal(a.code, 137);

  const ls2 = await tsctl(env, ["tasks", "ls"]);
  t.match(ls2.stdout, /^TASK\s+PID\s+STATUS\s+EXIT\nbg\s+\d+\s+STOPPED\s+137\n$/);
  const rm = await tsctl(env, ["tasks", "rm", "bg"]);
  t.equal(rm.code, 0);
  t.same(readdirSync(join(fifoDir, "default")), [], "tasks rm removed the fifos");
  const crm = await tsctl(env, ["c", "rm", "bg"]);
  t.equal(crm.code, 0);
  t.equal(daemon.containers.size, 0);
});

t.test("tasks rm -f kills a running task first; tasks wait prints the status", async (t) => {
  const { daemon, env, rootfs } = await setup(t);
  t.equal((await tsctl(env, ["run", "-d", "--null-io", "--rootfs", rootfs, "f1", "sleep"])).code, 0);
  const waiting = tsctl(env, ["tasks", "wait", "f1"]);
  await until(() => daemon.callsOf("Wait").length > 0, "Wait");
  const rm = await tsctl(env, ["tasks", "rm", "-f", "f1"]);
  t.equal(rm.stderr, "");
  t.equal(rm.code, 0);
  t.match(daemon.callsOf("Kill")[0]?.request, { signal: 9, all: true });
  const w = await waiting;
  t.equal(w.stdout, "137\n");
  t.equal(w.code, 0);
  t.equal(daemon.processes.size, 0);
});

t.test("tasks exec: runs in the container, output copied, process deleted", async (t) => {
  const { daemon, env, rootfs } = await setup(t);
  t.equal(
    (await tsctl(env, ["run", "-d", "--null-io", "--env", "A=1", "--rootfs", rootfs, "x1", "sleep"])).code,
    0,
  );
  const e = await tsctl(env, [
    "tasks",
    "exec",
    "--exec-id",
    "e1",
    "--cwd",
    "/tmp",
    "x1",
    "echo",
    "from",
    "--exec",
  ]);
  t.equal(e.stderr, "");
  t.equal(e.code, 0);
  t.equal(e.stdout, "from --exec\n");
  const req = daemon.callsOf("Exec")[0]?.request as {
    execId: string;
    stdout: string;
    spec: { value: Uint8Array };
  };
  t.equal(req.execId, "e1");
  t.match(req.stdout, /\/x1-[A-Za-z0-9]{6}\/e1-stdout$/);
  const spec = JSON.parse(Buffer.from(req.spec.value).toString());
  t.same(spec.args, ["echo", "from", "--exec"]);
  t.equal(spec.cwd, "/tmp");
  t.ok(spec.env.includes("A=1"), "the container's environment");
  t.same(methods(daemon).slice(-4), ["Tasks.Exec", "Tasks.Wait", "Tasks.Start", "Tasks.DeleteProcess"]);
  const code = await tsctl(env, ["t", "exec", "--exec-id", "e2", "x1", "exit", "5"]);
  t.equal(code.code, 5);
  const missing = await tsctl(env, ["t", "exec", "--exec-id", "e3", "nope", "true"]);
  t.equal(missing.code, 1);
  t.equal(missing.stderr, 'tsctl: container "nope": not found\n');
});

t.test("containers ls/info, tasks ps/metrics/pause/resume, namespaces", async (t) => {
  const { daemon, env, rootfs } = await setup(t);
  t.equal(
    (await tsctl(env, ["-n", "team", "run", "-d", "--null-io", "--rootfs", rootfs, "w", "sleep"])).code,
    0,
  );
  t.ok(
    daemon.calls.every((c) => c.namespace === "team"),
    "-n reaches every call",
  );
  t.equal(
    (await tsctl(env, ["c", "ls"])).stdout,
    "CONTAINER  IMAGE  RUNTIME\n",
    "the default namespace is empty",
  );
  const ls = await tsctl(env, ["c", "ls"], { extraEnv: { TSRUNC_NAMESPACE: "team" } });
  t.equal(ls.stdout, "CONTAINER  IMAGE  RUNTIME\nw          -      io.containerd.tsrunc.v2\n");
  const json = JSON.parse((await tsctl(env, ["c", "ls", "--format", "json", "-n", "team"])).stdout);
  t.equal(json.length, 1);
  t.equal(json[0].id, "w");
  t.equal(json[0].spec.root.path, rootfs);
  const info = JSON.parse((await tsctl(env, ["-n", "team", "containers", "info", "w"])).stdout);
  t.same(info.spec.process.args, ["sleep"]);
  t.match(info.createdAt, /^\d{4}-/);
  const ps = await tsctl(env, ["-n", "team", "t", "ps", "w"]);
  t.match(ps.stdout, /^PID\s+INFO\n\d+\s+-\n$/);
  const m = await tsctl(env, ["-n", "team", "t", "metrics", "w"]);
  t.match(m.stdout, /pids\.current\s+3\n/);
  t.match(m.stdout, /memory\.usage\s+4096\n/);
  const mj = JSON.parse((await tsctl(env, ["-n", "team", "t", "metrics", "--format", "json", "w"])).stdout);
  t.equal(mj[0].type, "io.containerd.cgroups.v2.Metrics");
  t.equal(mj[0].data.pids.limit, 100);
  t.equal((await tsctl(env, ["-n", "team", "t", "pause", "w"])).code, 0);
  t.match((await tsctl(env, ["-n", "team", "t", "ls"])).stdout, /PAUSED/);
  t.equal((await tsctl(env, ["-n", "team", "t", "resume", "w"])).code, 0);
  const badFormat = await tsctl(env, ["c", "ls", "--format", "yaml"]);
  t.equal(badFormat.code, 2);
  const v = await tsctl(env, ["version"]);
  t.equal(v.code, 0);
  t.match(v.stdout, /Client:\n {2}Version: {2}0\.0\.0/);
  t.match(v.stdout, /no Version service yet/);
});

t.test("events: one JSON line per event; SIGINT ends it cleanly", async (t) => {
  const { daemon, env } = await setup(t);
  let lines = "";
  const r = await tsctl(env, ["events", 'topic=="/tasks/exit"'], {
    onStart: (p) => {
      p.stdout?.on("data", (d: Buffer) => {
        lines += d.toString();
        if (lines.split("\n").length > 2) p.kill("SIGINT");
      });
      void until(() => daemon.subscribers.size > 0, "Subscribe").then(() => {
        daemon.publish(
          "default",
          "/tasks/exit",
          packAny(events.TaskExit, { containerId: "a", exitStatus: 1 }),
        );
        daemon.publish("ns2", "/tasks/exit", packAny(events.TaskExit, { containerId: "b", exitStatus: 2 }));
      });
    },
  });
  t.equal(r.code, 0);
  t.equal(r.stderr, "");
  const got = r.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  t.equal(got.length, 2);
  t.match(got[0], { namespace: "default", topic: "/tasks/exit", type: "containerd.events.TaskExit" });
  t.match(got[0].event, { containerId: "a", exitStatus: 1 });
  t.match(got[1], { namespace: "ns2" });
  t.same(daemon.request<{ filters: string[] }>("Subscribe", 0).filters, ['topic=="/tasks/exit"']);
  t.notOk(existsSync(join(env.fifoDir, "default")), "events makes no fifos");
});

t.test("a daemon that goes away mid-run: one line, exit 1", async (t) => {
  const { daemon, env, rootfs } = await setup(t);
  const r = await tsctl(env, ["run", "--rootfs", rootfs, "gone", "sleep"], {
    onStart: () => {
      void until(() => daemon.callsOf("Start").length > 0, "Start").then(() => daemon.server.close());
    },
  });
  t.equal(r.code, 1);
  t.equal(r.stderr, `tsctl: lost the connection to tsruncd at ${env.address}\n`);
});
