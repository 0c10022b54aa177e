// Our shim (containerd-shim-tsrunc-v2) under real containerd 1.6, driven with ctr: output and exit
// codes, a detached task's events and signals, containerd SIGKILLed and restarted under running
// tasks, and our shim SIGKILLed (containerd's `delete` verb cleans up). Each test has its own
// containerd and installs the bundled shim into that containerd's temp root. The shim runs with
// its default socket dir (/run/tsrunc/s, names hashed from containerd's unique address) and runc
// root (/run/tsrunc/runc/<unique namespace>), as in production; the harness sweeps both.
//
// Notes on ctr 1.6: there is no `ctr task wait`; `ctr task attach` waits for the task and exits
// with its exit code, but deletes the task afterwards. So a wait is either polling `ctr task ls`
// until STOPPED (then `ctr task rm` reports the exit code) or an attach that ends the task's life.

import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import t, { type Test } from "tap";
import {
  assertNoLeaks,
  findRuncRoots,
  findScopeCgroups,
  findScopeMounts,
  findScopeProcesses,
  runcContainersIn,
} from "./helpers/cleanup.js";
import { argValue, type Containerd } from "./helpers/containerd.js";
import { importBusyboxImage } from "./helpers/image.js";
import { LineReader } from "./helpers/lines.js";
import { containerdWithOurShim } from "./helpers/our-shim.js";
import { alive } from "./helpers/shim.js";
import { waitFor } from "./helpers/wait.js";

const RUNTIME = "io.containerd.tsrunc.v2";
const SHIM = "containerd-shim-tsrunc-v2";
const _REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/**
 * `ctr run [flags] --runtime ours --rootfs <fresh rootfs> id cmd...`, or with `image`:
 * `ctr run [flags] --runtime ours <image> id cmd...` (an overlay snapshot the shim mounts).
 */
function run(cd: Containerd, flags: string[], id: string, cmd: string[], image?: string) {
  const source = image ? [image] : ["--rootfs", cd.rootfs(`rootfs-${id}`)];
  return cd.ctr(["run", ...flags, "--runtime", RUNTIME, ...source, id, ...cmd]);
}

/** True while something is mounted on the task's <bundle>/rootfs (an image's snapshot). */
function rootfsMounted(cd: Containerd, id: string): boolean {
  return findScopeMounts(cd.scope).includes(path.join(cd.bundleDir(id), "rootfs"));
}

/** id → {pid, status} from `ctr task ls`. */
async function taskList(cd: Containerd): Promise<Map<string, { pid: number; status: string }>> {
  const r = await cd.ctr(["task", "ls"]);
  if (r.exitCode !== 0) throw new Error(`${r.command}: ${r.stderr}`);
  const out = new Map<string, { pid: number; status: string }>();
  for (const line of r.stdout.split("\n").slice(1)) {
    const [id, pid, status] = line.trim().split(/\s+/);
    if (id && pid && status) out.set(id, { pid: Number(pid), status });
  }
  return out;
}

async function waitStatus(cd: Containerd, id: string, status: string, timeoutMs = 10000): Promise<void> {
  await waitFor(async () => ((await taskList(cd)).get(id)?.status === status ? true : undefined), {
    what: `task ${id} ${status}`,
    timeoutMs,
    intervalMs: 50,
  });
}

function readPid(file: string): number {
  return Number.parseInt(fs.readFileSync(file, "utf8"), 10);
}

function cmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
  } catch {
    return "";
  }
}

/** What we know of a task while it runs, for the leak check after it is gone. */
interface TaskTrace {
  id: string;
  initPid: number;
  shimPid: number;
  socket: string;
  bundle: string;
}

function trace(cd: Containerd, id: string): TaskTrace {
  const bundle = cd.bundleDir(id);
  const socket = cd.shimSocket(id); // also added to the scope's sockets for the sweep
  if (!socket) throw new Error(`no address file in ${bundle}`);
  return {
    id,
    bundle,
    socket,
    initPid: readPid(path.join(bundle, "init.pid")),
    shimPid: readPid(path.join(bundle, "shim.pid")),
  };
}

function shimProcesses(cd: Containerd, id?: string) {
  return findScopeProcesses(cd.scope, false).filter(
    (p) => p.argv.some((a) => a.endsWith(`/${SHIM}`)) && (id === undefined || argValue(p.argv, "id") === id),
  );
}

/** What is left of a task that should be gone (empty when nothing), while containerd still runs. */
function leftovers(cd: Containerd, tr: TaskTrace): string[] {
  const out: string[] = [];
  for (const p of shimProcesses(cd, tr.id)) out.push(`shim process ${p.pid}: ${p.argv.join(" ")}`);
  if (alive(tr.shimPid)) out.push(`shim ${tr.shimPid} alive`);
  if (alive(tr.initPid)) out.push(`init ${tr.initPid} alive: ${cmdline(tr.initPid)}`);
  for (const root of findRuncRoots(cd.scope)) {
    if (runcContainersIn(root).includes(tr.id)) out.push(`runc state ${root}/${tr.id}`);
  }
  for (const m of findScopeMounts(cd.scope)) if (m.startsWith(`${tr.bundle}/`)) out.push(`mount ${m}`);
  if (fs.existsSync(tr.socket)) out.push(`socket ${tr.socket}`);
  if (fs.existsSync(tr.bundle)) out.push(`bundle ${tr.bundle}`);
  for (const c of findScopeCgroups(cd.scope)) {
    if (c.endsWith(`/${cd.namespace}/${tr.id}`)) out.push(`cgroup ${c}`);
  }
  return out;
}

/** Waits (the shim exits just after Shutdown) and then asserts that nothing of the task is left. */
async function assertTaskGone(t: Test, cd: Containerd, tr: TaskTrace): Promise<void> {
  let left: string[] = [];
  await waitFor(
    () => {
      left = leftovers(cd, tr);
      return left.length === 0;
    },
    { what: `${tr.id} cleaned up`, timeoutMs: 5000, intervalMs: 50 },
  ).catch(() => {});
  t.same(left, [], `nothing of ${tr.id} is left (shim, init, runc state, mount, socket, bundle, cgroup)`);
}

type TaskEvent = Record<string, unknown>;

/**
 * `ctr events` from now on; resolves once the subscription is live (a namespace label change
 * shows up), so no event of the test can slip past it.
 */
async function events(cd: Containerd) {
  const reader = new LineReader(cd.ctrSpawn(["events"]).stdout);
  const parse = (line: string): [string, TaskEvent] | undefined => {
    const m = / (\/tasks\/\S+) (\{.*\})$/.exec(line);
    return m ? [m[1]!, JSON.parse(m[2]!) as TaskEvent] : undefined;
  };
  await waitFor(
    async () => {
      await cd.ctr(["namespaces", "label", cd.namespace, `probe=${Date.now()}`]);
      return reader.lines.some((l) => l.includes("/namespaces/update"));
    },
    { what: "ctr events subscribed", timeoutMs: 10000, intervalMs: 100 },
  );
  return {
    /** The /tasks/* events of container `id` so far, as [topic, event]. */
    of(id: string): Array<[string, TaskEvent]> {
      return reader.lines.map(parse).filter((e): e is [string, TaskEvent] => e?.[1].container_id === id);
    },
    /** Waits for the event `topic` of container `id`. */
    async next(id: string, topic: string, timeoutMs = 10000): Promise<TaskEvent> {
      const line = await reader.waitFor((l) => {
        const e = parse(l);
        return e?.[0] === topic && e[1].container_id === id;
      }, timeoutMs);
      return parse(line)![1];
    },
  };
}

/** The socket path our shim logged ("shim serving") for task `id`, from containerd's log. */
function servedSocket(cd: Containerd, id: string): string | undefined {
  for (const line of cd.logTail(100000).split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const rec = JSON.parse(line) as { id?: string; msg?: string; socket?: string };
      if (rec.msg === "shim serving" && rec.id === id) return rec.socket;
    } catch {
      // not one of the shim's lines
    }
  }
  return undefined;
}

async function finish(t: Test, cd: Containerd): Promise<void> {
  t.same(await cd.stop(), [], "stop() found nothing to clean up by force");
  assertNoLeaks(t, cd.scope);
}

t.test("ctr run --rm: stdout, stderr and exit code; nothing left", async (t) => {
  const cd = await containerdWithOurShim(t);
  const r = await run(cd, ["--rm"], "c1", ["/bin/sh", "-c", "echo out; echo err >&2; exit 3"]);
  t.equal(r.stdout, "out", "stdout");
  t.equal(r.stderr, "err", "stderr");
  t.equal(r.exitCode, 3, "ctr exits with the container's exit code");
  t.equal((await cd.ctr(["containers", "ls", "-q"])).stdout, "", "--rm removed the container");
  await waitFor(() => shimProcesses(cd).length === 0, { what: "shim gone", timeoutMs: 5000 }).catch(() => {});
  t.same(
    shimProcesses(cd).map((p) => p.argv.join(" ")),
    [],
    "no shim process",
  );
  t.same(
    findRuncRoots(cd.scope).flatMap((r) => runcContainersIn(r)),
    [],
    "no runc state",
  );
  t.same(findScopeMounts(cd.scope), [cd.root], "no mount but the temp root's tmpfs");
  const socket = servedSocket(cd, "c1");
  t.ok(socket, "the shim logged its socket (through the bundle's log fifo into containerd's log)");
  t.notOk(socket && fs.existsSync(socket), `no shim socket ${socket}`);

  // The same from an image: the shim mounts the overlay snapshot and must unmount it.
  const image = await importBusyboxImage(cd);
  const ri = await run(
    cd,
    ["--rm"],
    "c2",
    ["/bin/sh", "-c", "grep -q ' / / .* - overlay ' /proc/self/mountinfo && echo out; echo err >&2; exit 3"],
    image,
  );
  t.same(
    [ri.stdout, ri.stderr, ri.exitCode],
    ["out", "err", 3],
    "image: stdout on an overlay root, stderr, 3",
  );
  await waitFor(() => shimProcesses(cd).length === 0, { what: "shim gone", timeoutMs: 5000 }).catch(() => {});
  t.same(
    shimProcesses(cd).map((p) => p.argv.join(" ")),
    [],
    "image: no shim process",
  );
  t.same(findScopeMounts(cd.scope), [cd.root], "image: the rootfs is unmounted");
  const socket2 = servedSocket(cd, "c2");
  t.notOk(socket2 === undefined || fs.existsSync(socket2), `image: no shim socket ${socket2}`);
  await finish(t, cd);
});

t.test("detached run, SIGKILL: task ls, events in order, exit 137, rm leaves nothing", async (t) => {
  const cd = await containerdWithOurShim(t);
  const image = await importBusyboxImage(cd);
  const ev = await events(cd);
  const r = await run(cd, ["-d"], "k1", ["/bin/sleep", "1000"], image);
  t.equal(r.exitCode, 0, "ctr run -d k1", { stderr: r.stderr });
  const tr = trace(cd, "k1");
  const task = (await taskList(cd)).get("k1");
  t.same(task, { pid: tr.initPid, status: "RUNNING" }, "ctr task ls: RUNNING with the init's pid");
  // `runc start` returns once the init was told to exec; the exec itself may follow a moment later.
  const seen = await waitFor(() => (cmdline(tr.initPid) === "/bin/sleep 1000" ? true : undefined), {
    what: "the init's exec",
    timeoutMs: 5000,
  }).catch(() => cmdline(tr.initPid));
  t.equal(seen, true, "that pid is the container's process (/bin/sleep 1000)", { cmdline: seen });
  t.ok(alive(tr.shimPid), "the shim serves");
  t.ok(fs.statSync(tr.socket).isSocket(), "the shim's socket exists");
  t.ok(rootfsMounted(cd, "k1"), "the image's snapshot is mounted on the bundle's rootfs");

  const kill = await cd.ctr(["task", "kill", "-s", "KILL", "k1"]);
  t.equal(kill.exitCode, 0, "ctr task kill -s KILL", { stderr: kill.stderr });
  await waitStatus(cd, "k1", "STOPPED");
  const exit = await ev.next("k1", "/tasks/exit");
  t.equal(exit.exit_status, 137, "/tasks/exit carries 137");
  t.equal(exit.pid, tr.initPid, "/tasks/exit names the init's pid");

  const rm = await cd.ctr(["task", "rm", "k1"]);
  t.equal(rm.exitCode, 0, "ctr task rm k1", { stderr: rm.stderr });
  t.match(rm.stderr, /exit code 137/, "ctr task rm reports exit code 137");
  await ev.next("k1", "/tasks/delete");
  const topics = ev.of("k1").map(([topic]) => topic);
  t.same(topics, ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"], "events in order");
  const del = ev.of("k1").find(([topic]) => topic === "/tasks/delete")?.[1];
  t.equal(del?.exit_status, 137, "/tasks/delete carries 137");

  const crm = await cd.ctr(["containers", "rm", "k1"]);
  t.equal(crm.exitCode, 0, "ctr containers rm k1", { stderr: crm.stderr });
  await assertTaskGone(t, cd, tr);
  await finish(t, cd);
});

t.test("SIGTERM to an init that traps it: exit 143", async (t) => {
  const cd = await containerdWithOurShim(t);
  // A pid namespace's init ignores TERM unless it installs a handler.
  const r = await run(cd, ["-d"], "term1", [
    "/bin/sh",
    "-c",
    "trap 'exit 143' TERM; touch /ready; while true; do sleep 0.1; done",
  ]);
  t.equal(r.exitCode, 0, "ctr run -d term1", { stderr: r.stderr });
  const tr = trace(cd, "term1");
  await waitFor(() => fs.existsSync(path.join(cd.root, "rootfs-term1", "ready")), {
    what: "trap installed",
    timeoutMs: 5000,
  });
  // `ctr task attach` is ctr 1.6's wait: it exits with the task's exit code (and deletes the task).
  const attach = cd.ctrSpawn(["task", "attach", "term1"]);
  await new Promise((r) => setTimeout(r, 300));
  const kill = await cd.ctr(["task", "kill", "term1"]); // SIGTERM is ctr's default
  t.equal(kill.exitCode, 0, "ctr task kill (TERM)", { stderr: kill.stderr });
  const waited = await attach;
  t.equal(waited.exitCode, 143, "the task exits 143");
  t.notOk((await taskList(cd)).has("term1"), "attach deleted the task");
  t.equal((await cd.ctr(["containers", "rm", "term1"])).exitCode, 0);
  await assertTaskGone(t, cd, tr);
  await finish(t, cd);
});

t.test("containerd SIGKILLed and restarted under 5 running tasks; one exits meanwhile", async (t) => {
  const cd = await containerdWithOurShim(t);
  const image = await importBusyboxImage(cd);
  const ids = ["r1", "r2", "r3", "r4", "r5"];
  // r1-r4 from the image (mounted snapshots), all at once; r5 on a plain rootfs dir it watches.
  const runs = await Promise.all(
    ids.map((id) =>
      id === "r5"
        ? run(cd, ["-d"], id, ["/bin/sh", "-c", "while [ ! -e /go ]; do sleep 0.05; done; exit 7"])
        : run(cd, ["-d"], id, ["/bin/sleep", "1000"], image),
    ),
  );
  for (const [i, r] of runs.entries()) t.equal(r.exitCode, 0, `ctr run -d ${ids[i]}`, { stderr: r.stderr });
  const traces = new Map(ids.map((id) => [id, trace(cd, id)]));
  const before = await taskList(cd);
  for (const id of ids) t.equal(before.get(id)?.status, "RUNNING", `${id} runs`);
  t.ok(
    ids.slice(0, 4).every((id) => rootfsMounted(cd, id)),
    "r1-r4 have their snapshots mounted",
  );

  await cd.kill9();
  t.notOk(cd.running(), "containerd is gone");
  t.equal(shimProcesses(cd).length, 5, "the five shims survive it");
  // r5 exits while containerd is down: its shim must keep the exit and report it later.
  fs.writeFileSync(path.join(cd.root, "rootfs-r5", "go"), "");
  const r5 = traces.get("r5")!;
  await waitFor(() => !alive(r5.initPid), { what: "r5 exited", timeoutMs: 5000 });
  await new Promise((r) => setTimeout(r, 200)); // the shim's first publish attempts fail meanwhile

  const logBefore = fs.statSync(cd.logPath).size;
  await cd.restart();
  // The shim kept r5's /tasks/exit while containerd was away and forwards it now.
  const forwarded = await waitFor(
    () => {
      const log = fs.readFileSync(cd.logPath).subarray(logBefore).toString();
      return /msg="event forwarded" ns=\S+ topic=\/tasks\/exit/.test(log) || undefined;
    },
    { what: "r5's exit forwarded", timeoutMs: 5000 },
  ).catch(() => false);
  t.ok(forwarded, "the restarted containerd receives the /tasks/exit the shim held");
  const after = await taskList(cd);
  for (const id of ids.slice(0, 4)) {
    t.same(after.get(id), { pid: traces.get(id)!.initPid, status: "RUNNING" }, `${id} still RUNNING`);
  }
  t.same(after.get("r5"), { pid: r5.initPid, status: "STOPPED" }, "r5 is STOPPED");
  const r5rm = await cd.ctr(["task", "rm", "r5"]);
  t.equal(r5rm.exitCode, 0, "ctr task rm r5", { stderr: r5rm.stderr });
  t.match(r5rm.stderr, /exit code 7\b/, "ctr task rm r5 reports exit code 7");

  await Promise.all(
    ids.slice(0, 4).map(async (id) => {
      const k = await cd.ctr(["task", "kill", "-s", "KILL", id]);
      t.equal(k.exitCode, 0, `ctr task kill -s KILL ${id}`, { stderr: k.stderr });
      await waitStatus(cd, id, "STOPPED");
      const rm = await cd.ctr(["task", "rm", id]);
      t.equal(rm.exitCode, 0, `ctr task rm ${id}`, { stderr: rm.stderr });
      t.match(rm.stderr, /exit code 137/, `${id} exited 137`);
    }),
  );
  for (const id of ids) t.equal((await cd.ctr(["containers", "rm", id])).exitCode, 0, `containers rm ${id}`);
  for (const tr of traces.values()) await assertTaskGone(t, cd, tr);
  await finish(t, cd);
});

t.test("our shim SIGKILLed: containerd runs `delete`, the task ends with 137, nothing leaks", async (t) => {
  const cd = await containerdWithOurShim(t);
  const image = await importBusyboxImage(cd);
  const ev = await events(cd);
  const r = await run(cd, ["-d"], "s1", ["/bin/sleep", "1000"], image);
  t.equal(r.exitCode, 0, "ctr run -d s1", { stderr: r.stderr });
  const tr = trace(cd, "s1");
  t.equal((await taskList(cd)).get("s1")?.status, "RUNNING");
  t.ok(rootfsMounted(cd, "s1"), "the image's snapshot is mounted on the bundle's rootfs");
  process.kill(tr.shimPid, "SIGKILL");

  const exit = await ev.next("s1", "/tasks/exit");
  t.equal(exit.exit_status, 137, "/tasks/exit carries 137 (from the delete verb)");
  t.equal(exit.pid, tr.initPid, "/tasks/exit names the init's pid");
  await ev.next("s1", "/tasks/delete");
  t.match(cd.logTail(400), /cleaning up dead shim/, "containerd cleaned up after the dead shim");
  // As with the Go shim, containerd forgets the task: task ls leaves it out, task rm says not found.
  t.notOk((await taskList(cd)).has("s1"), "ctr task ls no longer lists s1");
  const rm = await cd.ctr(["task", "rm", "s1"]);
  t.match(rm.stderr, /not found/, "ctr task rm: no task");
  const crm = await cd.ctr(["containers", "rm", "s1"]);
  t.equal(crm.exitCode, 0, "ctr containers rm s1", { stderr: crm.stderr });
  await assertTaskGone(t, cd, tr);
  await finish(t, cd);
});
