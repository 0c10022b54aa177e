// Self-test of the containerd harness, with the reference Go shim (containerd-shim-runc-v2): if
// these pass, a failure in a test of our own shim is our shim's, not the harness's.

import * as fs from "node:fs";
import * as path from "node:path";
import { execa } from "execa";
import t from "tap";
import { assertNoLeaks, findLeaks, findScopeProcesses, isClean, sweepSync } from "./helpers/cleanup.js";
import { type Containerd, startContainerd } from "./helpers/containerd.js";
import { LineReader } from "./helpers/lines.js";
import { waitFor } from "./helpers/wait.js";

const GO_RUNTIME = "io.containerd.runc.v2";

async function taskStatus(cd: Containerd, id: string): Promise<string | undefined> {
  const r = await cd.ctr(["task", "ls"]);
  const line = r.stdout.split("\n").find((l) => l.split(/\s+/)[0] === id);
  return line?.split(/\s+/)[2];
}

function shimProcesses(cd: Containerd) {
  return findScopeProcesses(cd.scope, false).filter((p) => /containerd-shim/.test(p.argv[0] ?? ""));
}

t.test("containerd starts in its own temp root and answers on both sockets", async (t) => {
  const cd = await startContainerd(t);
  t.match(cd.root, /^\/tmp\/tsr-[A-Za-z0-9]+$/);
  t.ok(
    Buffer.byteLength(cd.grpcAddress) < 60 && Buffer.byteLength(cd.ttrpcAddress) < 60,
    "short socket paths",
  );
  t.ok(fs.statSync(cd.ttrpcAddress).isSocket(), "ttrpc socket exists");
  const v = await cd.ctr(["version"]);
  t.equal(v.exitCode, 0, v.stderr);
  t.match(v.stdout, /Server:\s+Version:\s+1\.6\./);
  const plugins = await cd.ctr(["plugins", "ls"]);
  t.notMatch(plugins.stdout, /io\.containerd\.grpc\.v1\s+cri\s+linux\/amd64\s+ok/, "cri disabled");
  t.match(plugins.stdout, /io\.containerd\.runtime\.v2\s+task\s+\S+\s+ok/);
  const errors = await cd.stop();
  t.same(errors, [], "stop() had nothing to complain about");
  assertNoLeaks(t, cd.scope);
  t.same(await cd.stop(), [], "stop() is idempotent");
});

t.test("two containerds side by side", async (t) => {
  const [a, b] = await Promise.all([startContainerd(t), startContainerd(t)]);
  t.not(a.namespace, b.namespace);
  t.equal((await a.ctr(["version"])).exitCode, 0);
  t.equal((await b.ctr(["version"])).exitCode, 0);
});

t.test("ctr run --rm with the Go shim: stdout, stderr, exit code; nothing left after stop()", async (t) => {
  const cd = await startContainerd(t);
  const rootfs = cd.rootfs();
  const r = await cd.ctr([
    "run",
    "--rm",
    "--runtime",
    GO_RUNTIME,
    "--rootfs",
    rootfs,
    "c1",
    "/bin/sh",
    "-c",
    "echo out; echo err >&2; exit 3",
  ]);
  t.equal(r.stdout, "out", "stdout");
  t.equal(r.stderr, "err", "stderr");
  t.equal(r.exitCode, 3, "exit code");
  t.equal((await cd.ctr(["containers", "ls", "-q"])).stdout, "", "--rm removed the container");
  t.same(await cd.stop(), []);
  assertNoLeaks(t, cd.scope);
});

t.test("detached run, kill -s KILL, wait, rm", async (t) => {
  const cd = await startContainerd(t);
  const rootfs = cd.rootfs();
  const run = await cd.ctr([
    "run",
    "-d",
    "--runtime",
    GO_RUNTIME,
    "--rootfs",
    rootfs,
    "c2",
    "/bin/sleep",
    "1000",
  ]);
  t.equal(run.exitCode, 0, run.stderr);
  t.equal(await taskStatus(cd, "c2"), "RUNNING");

  const shims = shimProcesses(cd);
  t.equal(shims.length, 1, "one shim process, found by its -address");
  t.ok(fs.existsSync(`/sys/fs/cgroup/memory/${cd.namespace}/c2`), "container cgroup /<namespace>/<id>");
  const socket = cd.shimSocket("c2");
  t.ok(socket && fs.statSync(socket).isSocket(), `shim socket ${socket}`);

  const kill = await cd.ctr(["task", "kill", "-s", "KILL", "c2"]);
  t.equal(kill.exitCode, 0, kill.stderr);
  t.equal(
    await waitFor(async () => ((await taskStatus(cd, "c2")) === "STOPPED" ? true : undefined), {
      what: "task stopped",
    }),
    true,
  );
  const rm = await cd.ctr(["task", "rm", "c2"]);
  t.equal(rm.exitCode, 0, "task rm");
  t.match(rm.stderr, /exit code 137/, "ctr reports the SIGKILL exit status");
  t.equal((await cd.ctr(["containers", "rm", "c2"])).exitCode, 0);
  await waitFor(() => (shimProcesses(cd).length === 0 ? true : undefined), { what: "shim gone" });

  t.same(await cd.stop(), []);
  assertNoLeaks(t, cd.scope);
});

t.test("PATH and env as a shim sees them (a fake containerd-shim-fake-v2 on a prepended dir)", async (t) => {
  // The shim contract as containerd 1.6 runs it: argv, cwd = bundle, TTRPC_ADDRESS, and none of
  // tap's NODE_OPTIONS (which would make a Node shim load tap's hooks).
  const bin = fs.mkdtempSync("/tmp/tsr-");
  t.teardown(() => fs.rmSync(bin, { recursive: true, force: true }));
  const record = path.join(bin, "record");
  fs.writeFileSync(
    path.join(bin, "containerd-shim-fake-v2"),
    `#!/bin/sh\n{ echo "argv: $*"; echo "cwd: $(pwd)"; env | grep -E '^(TTRPC_ADDRESS|NODE_OPTIONS|PATH)='; } >> ${record}\necho "fake shim refuses" >&2\nexit 1\n`,
    { mode: 0o755 },
  );
  // Under tap this process has NODE_OPTIONS (--import tap's processinfo); make sure of it.
  const nodeOptions = process.env.NODE_OPTIONS;
  process.env.NODE_OPTIONS = nodeOptions ?? "--no-deprecation";
  t.teardown(() => {
    if (nodeOptions === undefined) delete process.env.NODE_OPTIONS;
  });
  const cd = await startContainerd(t, { pathPrepend: [bin] });
  const rootfs = cd.rootfs();
  const r = await cd.ctr([
    "run",
    "--rm",
    "--runtime",
    "io.containerd.fake.v2",
    "--rootfs",
    rootfs,
    "f1",
    "/bin/true",
  ]);
  t.not(r.exitCode, 0, "ctr run fails: the shim refused");
  t.match(r.stderr, /fake shim refuses/, "containerd relays the shim's start output");
  const text = fs.readFileSync(record, "utf8");
  const start = text.split("\n").find((l) => l.startsWith("argv: ") && l.endsWith(" start")) ?? "";
  t.match(
    start,
    `-namespace ${cd.namespace} -address ${cd.grpcAddress} -publish-binary /usr/bin/containerd -id f1`,
    "start argv",
  );
  t.match(text, `cwd: ${cd.bundleDir("f1")}`, "start runs in the bundle");
  t.match(text, `TTRPC_ADDRESS=${cd.ttrpcAddress}`);
  // containerd's opt plugin puts <opt>/bin first; then come the prepended dirs.
  t.match(text, `PATH=${cd.root}/opt/bin:${bin}:`, "PATH: <opt>/bin, then the prepended dir");
  t.notMatch(text, /NODE_OPTIONS/, "no NODE_OPTIONS");
  t.same(await cd.stop(), []);
  assertNoLeaks(t, cd.scope);
});

t.test("containerd SIGKILLed and restarted while a container runs", async (t) => {
  const cd = await startContainerd(t);
  const rootfs = cd.rootfs();
  t.equal(
    (await cd.ctr(["run", "-d", "--runtime", GO_RUNTIME, "--rootfs", rootfs, "c3", "/bin/sleep", "1000"]))
      .exitCode,
    0,
  );
  const pid = cd.pid();
  await cd.kill9();
  t.notOk(cd.running(), "containerd is gone");
  t.equal(shimProcesses(cd).length, 1, "the shim survives containerd");
  t.not((await cd.ctr(["version"], { timeout: 5000 })).exitCode, 0, "nothing answers meanwhile");

  await cd.restart();
  t.not(cd.pid(), pid, "a new containerd");
  t.equal(await taskStatus(cd, "c3"), "RUNNING", "the restarted containerd finds the task again");
  t.equal((await cd.ctr(["task", "kill", "-s", "KILL", "c3"])).exitCode, 0);
  await waitFor(async () => ((await taskStatus(cd, "c3")) === "STOPPED" ? true : undefined), {
    what: "task stopped",
  });
  t.equal((await cd.ctr(["task", "rm", "c3"])).exitCode, 0);
  t.equal((await cd.ctr(["containers", "rm", "c3"])).exitCode, 0);
});

t.test("stop() cleans up what a test left running: containers, shims, mounts, cgroups", async (t) => {
  const cd = await startContainerd(t);
  const rootfs = cd.rootfs();
  for (const id of ["a1", "a2"]) {
    const r = await cd.ctr([
      "run",
      "-d",
      "--runtime",
      GO_RUNTIME,
      "--rootfs",
      rootfs,
      id,
      "/bin/sleep",
      "1000",
    ]);
    t.equal(r.exitCode, 0, r.stderr);
  }
  // a paused container (frozen cgroup) must be cleaned too
  t.equal((await cd.ctr(["task", "pause", "a2"])).exitCode, 0);
  // a stray mount under the temp root, and a background ctr
  const mnt = path.join(cd.root, "mnt", "inner");
  fs.mkdirSync(mnt, { recursive: true });
  await execa("mount", ["-t", "tmpfs", "tsr-test", path.join(cd.root, "mnt")]);
  fs.mkdirSync(mnt);
  await execa("mount", ["-t", "tmpfs", "tsr-test", mnt]);
  cd.ctrSpawn(["events"]);
  await cd.kill9(); // the worst case: containerd gone first

  const before = findLeaks(cd.scope);
  t.ok(before.processes.length >= 4, "shims and containers are running");
  t.ok(before.mounts.includes(mnt) && before.mounts.includes(path.dirname(mnt)), "the stray mounts are seen");
  t.ok(before.cgroups.length > 0);
  t.equal(before.runcContainers.length, 2);

  t.same(await cd.stop(), []);
  assertNoLeaks(t, cd.scope);
});

t.test("a test process that dies (SIGTERM) still leaves nothing behind", async (t) => {
  const child = execa("node", [path.join(import.meta.dirname, "fixtures", "harness-crash.js")], {
    reject: false,
    buffer: false,
    stdin: "ignore",
    stderr: "inherit",
  });
  const scope = JSON.parse(await new LineReader(child.stdout).waitFor(/^\{/, 20000));
  t.teardown(() => {
    child.kill("SIGKILL");
    sweepSync(scope);
  });
  const running = findLeaks(scope);
  t.ok(running.processes.length >= 2, "the child's shim and container run");
  child.kill("SIGTERM");
  const r = await child;
  t.equal(r.signal, "SIGTERM", "the child died of SIGTERM");
  const leaks = findLeaks(scope);
  t.ok(isClean(leaks), "its exit hook swept everything", { leaks });
});
