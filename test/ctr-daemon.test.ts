// containerd's own client drives tsruncd: Debian's `ctr` (containerd 1.6) against tsruncd's
// containerd gRPC socket (--grpc-address), no Go code of ours. One daemon for the file (the
// restart test kills and restarts it); our shim (`--runtime io.containerd.tsrunc.v2`) for most,
// ctr's default runtime (Debian's Go shim, started by tsruncd) once. The last test proves that
// nothing is left: no daemon, shim or container process, no bundle, no runc state, no socket.
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { execa } from "execa";
import t from "tap";
import { goShimSocketPath } from "./helpers/cleanup.js";
import { type CtrResult, startDaemonWithGrpc } from "./helpers/ctr-daemon.js";
import { type GrpcError, grpcUnary } from "./helpers/grpc-unary.js";
import { LineReader } from "./helpers/lines.js";
import { waitFor } from "./helpers/wait.js";

t.setTimeout(240_000);

const TS = ["--runtime", "io.containerd.tsrunc.v2"];
const d = await startDaemonWithGrpc(t);
const rootfs = d.rootfs("shared");

const ok = (r: CtrResult) => (r.exitCode === 0 ? "" : `${r.command}: exit ${r.exitCode}: ${r.stderr}`);

interface TaskRow {
  id: string;
  pid: number;
  status: string;
}

/** `ctr task ls` parsed: TASK PID STATUS. */
async function tasks(): Promise<Map<string, TaskRow>> {
  const r = await d.ctr(["task", "ls"]);
  if (r.exitCode !== 0) throw new Error(ok(r));
  const rows = r.stdout.split("\n").slice(1).filter(Boolean);
  return new Map(
    rows.map((line) => {
      const [id = "", pid = "", status = ""] = line.trim().split(/\s+/);
      return [id, { id, pid: Number(pid), status }];
    }),
  );
}

async function containers(): Promise<string[]> {
  const r = await d.ctr(["containers", "ls", "-q"]);
  if (r.exitCode !== 0) throw new Error(ok(r));
  return r.stdout.split("\n").filter(Boolean).sort();
}

/** Kills, deletes and removes a container left by a failed assertion (no-op when gone). */
async function removeAll(id: string): Promise<void> {
  await d.ctr(["task", "kill", "-s", "SIGKILL", id]);
  await waitFor(async () => (await tasks()).get(id)?.status !== "RUNNING", {
    what: `${id} stopped`,
    timeoutMs: 20_000,
  }).catch(() => {});
  await d.ctr(["task", "rm", "-f", id]);
  await d.ctr(["containers", "rm", id]);
}

t.test("ctr version and namespaces", async (t) => {
  const v = await d.ctr(["version"]);
  t.equal(v.exitCode, 0, ok(v));
  t.match(v.stdout, /Server:\n\s+Version:\s+\d+\.\d+\.\d+/, "the server's version");
  const uuid = /UUID: ([0-9a-f-]{36})/.exec(v.stdout)?.[1];
  t.ok(uuid, "a server uuid");

  // A namespace exists once something is in it, or once created (with labels).
  const ns = `${d.namespace}x`;
  const created = await d.ctr(["namespaces", "create", ns, "a=1"]);
  t.equal(created.exitCode, 0, ok(created));
  const label = await d.ctr(["namespaces", "label", ns, "b=2"]);
  t.equal(label.exitCode, 0, ok(label));
  const ls = await d.ctr(["namespaces", "ls"]);
  t.equal(ls.exitCode, 0, ok(ls));
  t.match(ls.stdout, new RegExp(`^${ns}\\s+a=1,b=2\\s*$`, "m"), "created, with its labels");
  const again = await d.ctr(["namespaces", "create", ns]);
  t.equal(again.exitCode, 1);
  t.match(again.stderr, /already exists/);
  const rm = await d.ctr(["namespaces", "rm", ns]);
  t.equal(rm.exitCode, 0, ok(rm));
  t.notMatch((await d.ctr(["namespaces", "ls", "-q"])).stdout, new RegExp(`^${ns}$`, "m"), "removed");

  const plugins = await d.ctr(["plugins", "ls"]);
  t.equal(plugins.exitCode, 0, ok(plugins));
  t.match(plugins.stdout, /io\.containerd\.snapshotter\.v1\s+overlayfs\s+linux\/\w+\s+ok/);
  t.match(plugins.stdout, /io\.containerd\.grpc\.v1\s+tasks\s+-\s+ok/);
});

t.test("ctr run --rm --rootfs: output and exit status, nothing left", async (t) => {
  const r = await d.ctr([
    "run",
    "--rm",
    ...TS,
    "--rootfs",
    rootfs,
    "rm1",
    "/bin/sh",
    "-c",
    "echo out; echo err >&2; exit 3",
  ]);
  t.equal(r.stdout, "out");
  t.equal(r.stderr, "err");
  t.equal(r.exitCode, 3, "the container's exit status");
  t.same(await containers(), [], "--rm removed the container");
  t.notOk(fs.existsSync(path.join(d.state, d.namespace, "rm1")), "no bundle left");
  const ns = await d.ctr(["namespaces", "ls", "-q"]);
  t.equal(ns.exitCode, 0, ok(ns));
  t.match(ns.stdout, new RegExp(`^${d.namespace}$`, "m"), "the namespace stays once used, as containerd's");
});

t.test("ctr run -d, task ls/exec/ps/pause/resume/metrics/kill/rm, c label/rm", async (t) => {
  const id = "d1";
  t.teardown(() => removeAll(id));
  const run = await d.ctr(["run", "-d", ...TS, "--rootfs", rootfs, id, "/bin/sleep", "1000"]);
  t.equal(run.exitCode, 0, ok(run));
  const row = (await tasks()).get(id);
  t.equal(row?.status, "RUNNING");
  t.ok((row?.pid ?? 0) > 0, "a pid");
  t.same(await containers(), [id]);

  const exec = await d.ctr(["task", "exec", "--exec-id", "e1", id, "/bin/sh", "-c", "echo in-exec; exit 5"]);
  t.equal(exec.stdout, "in-exec");
  t.equal(exec.exitCode, 5, "the exec's exit status");

  const ps = await d.ctr(["task", "ps", id]);
  t.equal(ps.exitCode, 0, ok(ps));
  t.match(ps.stdout, new RegExp(`^${row?.pid}\\b`, "m"), "ps lists the init");

  const label = await d.ctr(["containers", "label", id, "k=v"]);
  t.equal(label.exitCode, 0, ok(label));
  t.match((await d.ctr(["containers", "info", id])).stdout, /"k": "v"/, "Containers.Update: the label");
  const pause = await d.ctr(["task", "pause", id]);
  t.equal(pause.exitCode, 0, ok(pause));
  t.equal((await tasks()).get(id)?.status, "PAUSED");
  const resume = await d.ctr(["task", "resume", id]);
  t.equal(resume.exitCode, 0, ok(resume));
  t.equal((await tasks()).get(id)?.status, "RUNNING");
  const metrics = await d.ctr(["task", "metrics", id]);
  t.equal(metrics.exitCode, 0, ok(metrics));
  t.match(metrics.stdout, /pids\.current|memory/i, "Tasks.Metrics: cgroup statistics");

  const busy = await d.ctr(["task", "rm", id]);
  t.equal(busy.exitCode, 1, "a running task is not removed");
  t.match(busy.stderr, /failed precondition|must be stopped/);

  const kill = await d.ctr(["task", "kill", "-s", "SIGKILL", id]);
  t.equal(kill.exitCode, 0, ok(kill));
  await waitFor(async () => (await tasks()).get(id)?.status === "STOPPED", {
    what: `${id} STOPPED`,
    timeoutMs: 20_000,
  });
  const rm = await d.ctr(["task", "rm", id]);
  t.equal(rm.exitCode, 0, ok(rm));
  t.equal((await tasks()).has(id), false, "no task");
  const crm = await d.ctr(["containers", "rm", id]);
  t.equal(crm.exitCode, 0, ok(crm));
  t.same(await containers(), []);
});

t.test("ctr run -t through a real pty", async (t) => {
  const require = createRequire(import.meta.url);
  const pty = require("node-pty") as typeof import("node-pty");
  const term = pty.spawn(
    "ctr",
    d.ctrArgs([
      "run",
      "--rm",
      "-t",
      ...TS,
      "--rootfs",
      rootfs,
      "tty1",
      "/bin/sh",
      "-c",
      'tty; read x; echo "got:$x"; exit 7',
    ]),
    { cols: 100, rows: 30, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: "/root" } },
  );
  let out = "";
  const exited = new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode)));
  term.onData((data) => {
    out += data;
  });
  t.teardown(async () => {
    term.kill();
    await removeAll("tty1");
  });
  await waitFor(() => /\/dev\/pts\/\d+/.test(out), { what: "the container's tty", timeoutMs: 60_000 });
  term.write("hello\r");
  const code = await Promise.race([
    exited,
    new Promise<number>((_, reject) =>
      setTimeout(() => reject(new Error(`no exit: ${JSON.stringify(out)}`)), 60_000),
    ),
  ]);
  t.match(out, /got:hello\r*\n/, "the input went through the terminal (echoed back as typed)");
  t.match(out, /^hello\r*$/m, "the terminal echoes");
  t.equal(code, 7, "ctr exits with the container's status");
  t.same(await containers(), []);
});

t.test("ctr events while containers start and stop", async (t) => {
  const events = d.ctrSpawn(["events"]);
  const lines = new LineReader(events.stdout);
  t.teardown(() => {
    events.kill("SIGKILL");
  });
  // ctr prints nothing when it has subscribed: publish probes (a container created and
  // removed) until one shows up.
  let probes = 0;
  await waitFor(
    async () => {
      const probe = `probe${probes++}`;
      await d.ctr(["containers", "create", ...TS, "--rootfs", rootfs, probe, "/bin/true"]);
      await d.ctr(["containers", "rm", probe]);
      return lines.waitFor(`"${probe}"`, 2_000).then(
        () => true,
        () => false,
      );
    },
    { what: "ctr events to receive", timeoutMs: 60_000 },
  );
  const from = lines.lines.length;
  const r = await d.ctr(["run", "--rm", ...TS, "--rootfs", rootfs, "ev1", "/bin/true"]);
  t.equal(r.exitCode, 0, ok(r));
  const wanted = [
    "/containers/create",
    "/tasks/create",
    "/tasks/start",
    "/tasks/exit",
    "/tasks/delete",
    "/containers/delete",
  ];
  await lines.waitFor((l) => l.includes("/containers/delete") && l.includes('"ev1"'), 30_000, from);
  const topics = lines.lines
    .slice(from)
    .map((line) => / (\S+) (\/[a-z/-]+) (\{.*\})$/.exec(line))
    .filter((m) => m !== null && m[1] === d.namespace && m[3]?.includes('"ev1"'))
    .map((m) => m?.[2]);
  t.same(topics, wanted, "the lifecycle's events, in order, in the test's namespace");
});

t.test("ctr's default runtime: tsruncd starts Debian's Go shim", async (t) => {
  const id = "go1";
  d.root.scope.sockets.add(goShimSocketPath(d.address, d.namespace, id));
  const r = await d.ctr(["run", "--rm", "--rootfs", rootfs, id, "/bin/sh", "-c", "echo from-go; exit 4"]);
  t.equal(r.stdout, "from-go");
  t.equal(r.exitCode, 4);
  t.same(await containers(), []);
});

t.test("restart: ctr run -d, SIGKILL tsruncd, restart, the task is still RUNNING", async (t) => {
  const id = "r1";
  t.teardown(() => removeAll(id));
  const run = await d.ctr(["run", "-d", ...TS, "--rootfs", rootfs, id, "/bin/sleep", "1000"]);
  t.equal(run.exitCode, 0, ok(run));
  const before = (await tasks()).get(id);
  t.equal(before?.status, "RUNNING");
  const uuid = /UUID: (\S+)/.exec((await d.ctr(["version"])).stdout)?.[1];

  await d.kill();
  const down = await d.ctr(["task", "ls"], { timeoutMs: 15_000 });
  t.not(down.exitCode, 0, "nothing answers while tsruncd is down");
  await d.start();

  const after = (await tasks()).get(id);
  t.equal(after?.status, "RUNNING", "still running");
  t.equal(after?.pid, before?.pid, "the same process");
  t.equal(/UUID: (\S+)/.exec((await d.ctr(["version"])).stdout)?.[1], uuid, "the same server uuid");
  const exec = await d.ctr(["task", "exec", "--exec-id", "after", id, "/bin/echo", "reachable"]);
  t.equal(exec.stdout, "reachable", "exec after the restart");
  await removeAll(id);
  t.same(await containers(), []);
});

t.test("leases: ctr leases create/ls/rm", async (t) => {
  const c = await d.ctr(["leases", "create", "--id", "l1", "--expires", "1h", "x=y"]);
  t.equal(c.exitCode, 0, ok(c));
  const ls = await d.ctr(["leases", "ls"]);
  t.match(ls.stdout, /^l1\s+\S+\s+.*containerd\.io\/gc\.expire=/m, "listed with its labels");
  t.match(ls.stdout, /x=y/);
  const dup = await d.ctr(["leases", "create", "--id", "l1"]);
  t.equal(dup.exitCode, 1);
  t.match(dup.stderr, /already exists/);
  const rm = await d.ctr(["leases", "rm", "--sync", "l1"]);
  t.equal(rm.exitCode, 0, ok(rm));
  t.notMatch((await d.ctr(["leases", "ls", "-q"])).stdout, /^l1$/m);
  const gone = await d.ctr(["leases", "rm", "l1"]);
  t.equal(gone.exitCode, 1);
  t.match(gone.stderr, /not found/);
});

t.test("gRPC edges: unknown methods, bad bodies, refused peers", async (t) => {
  const call = (service: string, method: string, body: Uint8Array) =>
    grpcUnary(d.grpcAddress, service, method, body, { "containerd-namespace": d.namespace }).then(
      () => ({ code: 0, message: "" }),
      (e: GrpcError) => ({ code: e.code, message: e.message }),
    );
  t.same(await call("containerd.services.nope.v1.Nope", "Get", new Uint8Array()), {
    code: 12,
    message: "unknown service containerd.services.nope.v1.Nope",
  });
  t.same(await call("containerd.services.version.v1.Version", "Nope", new Uint8Array()), {
    code: 12,
    message: "unknown method Nope for service containerd.services.version.v1.Version",
  });
  // A body that is not protobuf: an error status, and the daemon still answers.
  const bad = await call(
    "containerd.services.containers.v1.Containers",
    "Get",
    Uint8Array.of(0x0a, 0xff, 0xff),
  );
  t.ok(bad.code === 13 || bad.code === 3, `a malformed request is refused (${bad.code} ${bad.message})`);
  const bogusNs = await grpcUnary(
    d.grpcAddress,
    "containerd.services.containers.v1.Containers",
    "List",
    new Uint8Array(),
    {
      "containerd-namespace": "../x",
    },
  ).then(
    () => 0,
    (e: GrpcError) => e.code,
  );
  t.equal(bogusNs, 3, "an invalid namespace is InvalidArgument");
  t.equal((await d.ctr(["version"])).exitCode, 0, "still serving");
  // containerd's healthcheck (its Go client's IsServing): SERVING (status = 1).
  const health = await grpcUnary(d.grpcAddress, "grpc.health.v1.Health", "Check", new Uint8Array());
  t.same([...health], [0x08, 0x01], "Health.Check: SERVING");
  t.equal(
    (await call("grpc.health.v1.Health", "Check", Uint8Array.of(0x0a, 0x01, 0x78))).code,
    5,
    "unknown service: NotFound",
  );

  // The socket is root's (0600); loosened, a peer that is not root is still refused per call.
  t.equal(fs.statSync(d.grpcAddress).mode & 0o777, 0o600, "0600 as the ttrpc socket");
  fs.chmodSync(d.root.path, 0o711);
  fs.chmodSync(d.grpcAddress, 0o666);
  const r = await execa(
    "setpriv",
    ["--reuid=65534", "--regid=65534", "--clear-groups", "ctr", ...d.ctrArgs(["containers", "ls"])],
    { reject: false, stdin: "ignore", timeout: 30_000 },
  );
  fs.chmodSync(d.grpcAddress, 0o600);
  t.equal(r.exitCode, 1);
  t.match(String(r.stderr), /permission denied/i, "PermissionDenied for uid 65534");
  t.match(d.log(), /"msg":"peer refused"/, "logged");
});

t.test("nothing left", async (t) => {
  t.same(await containers(), []);
  await d.finish(t);
});
