// Pause/Resume, Update, Stats, OOM events and Checkpoint of our shim, driven through our own ttrpc
// client with real runc (no containerd): replies, status codes, cgroup files and event order.
import * as fs from "node:fs";
import * as path from "node:path";
import {
  cgroup1,
  events,
  OciLinuxResourcesType,
  OciProcessType,
  packAny,
  runcoptions,
  Topics,
  tasktypes,
  timestampToDate,
  unpackAnyAs,
} from "@tsrunc/protocol";
import { Code } from "@tsrunc/ttrpc";
import t from "tap";
import { alive, type ShimEnv, shimEnv } from "./helpers/shim.js";
import { waitFor } from "./helpers/wait.js";

const HOG = "x=a; while true; do x=$x$x; done";
const MiB = 1024 * 1024;

/** The directory of `pid`'s cgroup in a v1 hierarchy (this host keeps every controller in v1). */
function cgroupDir(pid: number, controller: string): string {
  const line = fs
    .readFileSync(`/proc/${pid}/cgroup`, "utf8")
    .split("\n")
    .find((l) => l.split(":")[1]?.split(",").includes(controller));
  if (!line) throw new Error(`no ${controller} cgroup for ${pid}`);
  return path.join("/sys/fs/cgroup", controller, line.slice(line.indexOf(":", line.indexOf(":") + 1) + 1));
}

const readCg = (dir: string, file: string) => fs.readFileSync(path.join(dir, file), "utf8").trim();

/** Topics of the events published for container `id`, in order. */
function topics(env: ShimEnv, id: string): string[] {
  return env.events
    .filter((e) => {
      const ev = e.event && (unpackEvent(e.event) as { containerId?: string } | undefined);
      return ev?.containerId === id;
    })
    .map((e) => e.topic);
}

function unpackEvent(any: { typeUrl: string; value: Uint8Array }): unknown {
  for (const type of [
    events.TaskCreate,
    events.TaskStart,
    events.TaskExit,
    events.TaskDelete,
    events.TaskPaused,
    events.TaskResumed,
    events.TaskOOM,
    events.TaskCheckpointed,
    events.TaskExecAdded,
    events.TaskExecStarted,
  ]) {
    if (any.typeUrl === type.typeName) return unpackAnyAs(any, type);
  }
  return undefined;
}

async function running(
  env: ShimEnv,
  id: string,
  args: string[],
  edit?: (spec: Record<string, unknown>) => void,
) {
  const bundle = await env.bundle(id, args, edit);
  const { task } = await env.start(bundle, id);
  const { pid } = await task.create({ id, bundle });
  await task.start({ id });
  return { task, pid, bundle };
}

function withMemoryLimit(bytes: number) {
  return (spec: Record<string, unknown>) => {
    const linux = spec.linux as { resources?: Record<string, unknown> };
    // swap = limit: no swap on top (memsw), so the hog meets the OOM killer and not the disk.
    linux.resources = { ...linux.resources, memory: { limit: bytes, swap: bytes } };
  };
}

t.test(
  "pause and resume: states, freezer, events, wrong states, exec refused, SIGKILL while paused",
  async (t) => {
    const env = await shimEnv(t);
    const bundle = await env.bundle("p1", ["/bin/sleep", "1000"]);
    const { task } = await env.start(bundle, "p1");
    const { pid } = await task.create({ id: "p1", bundle });
    await t.rejects(task.pause({ id: "p1" }), { code: Code.FailedPrecondition }, "pause a created task");
    await t.rejects(task.resume({ id: "p1" }), { code: Code.FailedPrecondition }, "resume a created task");
    await task.start({ id: "p1" });
    const freezer = cgroupDir(pid, "freezer");

    await task.pause({ id: "p1" });
    t.equal((await task.state({ id: "p1" })).status, tasktypes.Status.PAUSED, "State answers PAUSED");
    t.equal(readCg(freezer, "freezer.state"), "FROZEN");
    await t.rejects(task.pause({ id: "p1" }), { code: Code.FailedPrecondition }, "pause twice");
    await t.rejects(
      task.exec({
        id: "p1",
        execId: "x1",
        spec: packAny(OciProcessType, { args: ["/bin/true"], cwd: "/", user: { uid: 0, gid: 0 } }),
      }),
      { code: Code.FailedPrecondition },
      "no exec into a paused container",
    );
    await task.resume({ id: "p1" });
    t.equal((await task.state({ id: "p1" })).status, tasktypes.Status.RUNNING);
    t.equal(readCg(freezer, "freezer.state"), "THAWED");
    await t.rejects(task.resume({ id: "p1" }), { code: Code.FailedPrecondition }, "resume a running task");
    await t.rejects(task.pause({ id: "nope" }), { code: Code.NotFound });
    await t.rejects(task.pause({ id: "../x" }), { code: Code.InvalidArgument });

    // Paused, then SIGKILL: runc thaws the cgroup for SIGKILL, so the init dies at once.
    await task.pause({ id: "p1" });
    const killed = performance.now();
    await task.kill({ id: "p1", signal: 9 });
    const exit = await task.wait({ id: "p1" });
    const ms = performance.now() - killed;
    t.equal(exit.exitStatus, 137, `SIGKILL while paused ends the task (${ms.toFixed(0)} ms)`);
    t.ok(ms < 2000, "promptly");
    t.equal((await task.state({ id: "p1" })).status, tasktypes.Status.STOPPED);
    await t.rejects(task.resume({ id: "p1" }), { code: Code.FailedPrecondition }, "resume a stopped task");
    await task.delete({ id: "p1" });
    t.notOk(fs.existsSync(freezer), "cgroup removed by delete");
    await waitFor(() => topics(env, "p1").includes(Topics.taskDelete), { what: "delete event" });
    t.same(topics(env, "p1"), [
      Topics.taskCreate,
      Topics.taskStart,
      Topics.taskPaused,
      Topics.taskResumed,
      Topics.taskPaused,
      Topics.taskExit,
      Topics.taskDelete,
    ]);
    await task.shutdown({ id: "p1" }).catch(() => {});
  },
);

t.test("a signal other than SIGKILL waits in the freezer until Resume", async (t) => {
  const env = await shimEnv(t);
  const { task, pid } = await running(env, "p2", [
    "/bin/sh",
    "-c",
    "trap 'exit 143' TERM; while true; do sleep 0.05; done",
  ]);
  await new Promise((r) => setTimeout(r, 200)); // let the shell install its trap
  await task.pause({ id: "p2" });
  await task.kill({ id: "p2", signal: 15 });
  await new Promise((r) => setTimeout(r, 300));
  t.ok(alive(pid), "still there while frozen");
  t.equal((await task.state({ id: "p2" })).status, tasktypes.Status.PAUSED);
  await task.resume({ id: "p2" });
  t.equal((await task.wait({ id: "p2" })).exitStatus, 143, "the pending SIGTERM acts after Resume");
  await task.delete({ id: "p2" });
  await task.shutdown({ id: "p2" }).catch(() => {});
});

t.test(
  "update: runc update sets the cgroup limits; bad requests and stopped tasks are refused",
  async (t) => {
    const env = await shimEnv(t);
    const { task, pid } = await running(env, "u1", ["/bin/sleep", "1000"]);
    const memory = cgroupDir(pid, "memory");
    const pids = cgroupDir(pid, "pids");
    await task.update({
      id: "u1",
      resources: packAny(OciLinuxResourcesType, { memory: { limit: 64 * MiB }, pids: { limit: 42 } }),
    });
    t.equal(readCg(memory, "memory.limit_in_bytes"), String(64 * MiB), "memory.limit_in_bytes");
    t.equal(readCg(pids, "pids.max"), "42", "pids.max");
    // The JSON reaches runc as sent: a 64-bit value is not rounded on the way.
    await task.update({
      id: "u1",
      resources: {
        typeUrl: OciLinuxResourcesType.typeUrl,
        value: new TextEncoder().encode('{"pids":{"limit":-1}}'),
      },
    });
    t.equal(readCg(pids, "pids.max"), "max", "unlimited again");
    await task.pause({ id: "u1" });
    await task.update({
      id: "u1",
      resources: packAny(OciLinuxResourcesType, { memory: { limit: 48 * MiB } }),
    });
    t.equal(readCg(memory, "memory.limit_in_bytes"), String(48 * MiB), "a paused task can be updated");
    await task.resume({ id: "u1" });

    await t.rejects(task.update({ id: "u1" }), { code: Code.InvalidArgument }, "no resources");
    await t.rejects(
      task.update({ id: "u1", resources: packAny(runcoptions.Options, { root: "/x" }) }),
      { code: Code.InvalidArgument },
      "not LinuxResources",
    );
    await t.rejects(
      task.update({
        id: "u1",
        resources: { typeUrl: OciLinuxResourcesType.typeUrl, value: new Uint8Array([0x7b]) },
      }),
      { code: Code.InvalidArgument },
      "not JSON",
    );
    await t.rejects(
      task.update({ id: "u1", resources: packAny(OciLinuxResourcesType, { cpu: { cpus: "999" } }) }),
      { code: Code.Unknown, message: /OCI runtime update failed/ },
      "runc's refusal",
    );
    await task.kill({ id: "u1", signal: 9 });
    await task.wait({ id: "u1" });
    await t.rejects(
      task.update({ id: "u1", resources: packAny(OciLinuxResourcesType, { pids: { limit: 5 } }) }),
      { code: Code.FailedPrecondition },
      "stopped",
    );
    await task.delete({ id: "u1" });
    await task.shutdown({ id: "u1" }).catch(() => {});
  },
);

t.test("stats: v1 Metrics with real numbers that move under load; cost of a call", async (t) => {
  const env = await shimEnv(t);
  const { task } = await running(env, "s1", ["/bin/sh", "-c", "while true; do :; done"]);
  const metrics = async () => {
    const r = await task.stats({ id: "s1" });
    t.equal(r.stats?.typeUrl, "io.containerd.cgroups.v1.Metrics");
    return unpackAnyAs(r.stats!, cgroup1.Metrics);
  };
  const a = await metrics();
  await new Promise((r) => setTimeout(r, 500));
  const b = await metrics();
  const cpuA = a.cpu?.usage?.total ?? 0n;
  const cpuB = b.cpu?.usage?.total ?? 0n;
  t.ok(cpuB > cpuA, `cpu usage grows under a busy loop (${cpuA} → ${cpuB} ns)`);
  t.ok(cpuB - cpuA > 100_000_000n, "by more than 0.1 s of cpu in 0.5 s");
  t.ok((b.cpu?.usage?.perCpu.length ?? 0) > 0, "per-cpu usage");
  t.ok((b.memory?.usage?.usage ?? 0n) > 0n, `memory usage ${b.memory?.usage?.usage}`);
  t.ok((b.memory?.usage?.limit ?? 0n) > 0n, "memory limit (unlimited is a large number)");
  t.ok((b.pids?.current ?? 0n) >= 1n, `pids.current ${b.pids?.current}`);
  t.same(b.memoryOomControl, { oomKillDisable: 0n, underOom: 0n, oomKill: 0n }, "memory.oom_control");

  const n = 20;
  const started = performance.now();
  for (let i = 0; i < n; i++) await task.stats({ id: "s1" });
  const per = (performance.now() - started) / n;
  t.comment(`Stats: ${per.toFixed(1)} ms per call (runc events --stats), ${n} sequential calls`);
  t.ok(per < 1000, "a call takes well under a second");

  await task.pause({ id: "s1" });
  t.ok((await metrics()).pids?.current, "stats of a paused task");
  await task.resume({ id: "s1" });
  await task.kill({ id: "s1", signal: 9 });
  await task.wait({ id: "s1" });
  await t.rejects(task.stats({ id: "s1" }), { code: Code.FailedPrecondition }, "no stats of a stopped task");
  await task.delete({ id: "s1" });
  await t.rejects(task.stats({ id: "s1" }), { code: Code.NotFound });
  await task.shutdown({ id: "s1" }).catch(() => {});
});

t.test("OOM of the init under a spec memory limit: /tasks/oom before /tasks/exit, exit 137", async (t) => {
  const env = await shimEnv(t);
  const { task } = await running(env, "o1", ["/bin/sh", "-c", HOG], withMemoryLimit(16 * MiB));
  const exit = await task.wait({ id: "o1" });
  t.equal(exit.exitStatus, 137, "killed by the OOM killer");
  await waitFor(() => topics(env, "o1").includes(Topics.taskExit), { what: "exit event" });
  t.same(
    topics(env, "o1"),
    [Topics.taskCreate, Topics.taskStart, Topics.taskOOM, Topics.taskExit],
    "oom, then exit",
  );
  const oom = env.events.find((e) => e.topic === Topics.taskOOM)!;
  const exitedAt = timestampToDate(exit.exitedAt)!;
  const oomAt = timestampToDate(oom.timestamp!)!;
  t.comment(
    `OOM event published ${(exitedAt.getTime() - oomAt.getTime()).toFixed(0)} ms before the reaped exit time`,
  );
  t.same(unpackAnyAs(oom.event!, events.TaskOOM), { containerId: "o1" });
  await task.delete({ id: "o1" });
  await task.shutdown({ id: "o1" }).catch(() => {});
});

t.test("OOM of a child after Update lowered the limit: /tasks/oom while the init lives on", async (t) => {
  const env = await shimEnv(t);
  // The init starts its hog once /go exists, that is after the Update.
  const { task, bundle } = await running(env, "o2", [
    "/bin/sh",
    "-c",
    `while [ ! -e /go ]; do sleep 0.05; done; /bin/sh -c '${HOG}'; exec sleep 1000`,
  ]);
  await task.update({
    id: "o2",
    resources: packAny(OciLinuxResourcesType, { memory: { limit: 16 * MiB, swap: 16 * MiB } }),
  });
  fs.writeFileSync(path.join(bundle, "rootfs", "go"), "");
  const t0 = Date.now();
  await waitFor(() => topics(env, "o2").includes(Topics.taskOOM), { what: "oom event", timeoutMs: 10_000 });
  t.comment(`OOM event ${Date.now() - t0} ms after Update`);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(
    (await task.state({ id: "o2" })).status,
    tasktypes.Status.RUNNING,
    "the init survives its child's OOM",
  );
  t.same(topics(env, "o2"), [Topics.taskCreate, Topics.taskStart, Topics.taskOOM], "one oom event");
  await task.kill({ id: "o2", signal: 9 });
  await task.wait({ id: "o2" });
  await task.delete({ id: "o2" });
  await waitFor(() => topics(env, "o2").includes(Topics.taskDelete), { what: "delete event" });
  t.same(
    topics(env, "o2").filter((x) => x === Topics.taskOOM).length,
    1,
    "removing the cgroup raised no oom",
  );
  await task.shutdown({ id: "o2" }).catch(() => {});
});

t.test("checkpoint: CRIU's error comes back promptly and the task keeps running", async (t) => {
  const env = await shimEnv(t);
  const { task, pid, bundle } = await running(env, "c1", ["/bin/sleep", "1000"]);
  const image = path.join(env.root.path, "ckpt");
  fs.mkdirSync(image);
  for (const exit of [false, true]) {
    const started = performance.now();
    const err = await task
      .checkpoint({ id: "c1", path: image, options: packAny(runcoptions.CheckpointOptions, { exit }) })
      .then(
        () => undefined,
        (e: Error & { code: number }) => e,
      );
    const ms = performance.now() - started;
    t.ok(err, `checkpoint (exit=${exit}) fails here`);
    t.equal(err?.code, Code.Unknown);
    t.match(err?.message, /OCI runtime checkpoint failed: criu failed/, "runc's message");
    t.match(err?.message, /\ncriu: (?!exited)\S/, "CRIU's own error lines (from its dump.log)");
    t.match(err?.message, `criu log: ${bundle}/criu-dump.log`, "where CRIU's log was kept");
    t.comment(
      `checkpoint (exit=${exit}) failed in ${ms.toFixed(0)} ms: ${err?.message.split("\n").join(" | ")}`,
    );
    t.ok(ms < 10_000, "promptly");
    t.equal((await task.state({ id: "c1" })).status, tasktypes.Status.RUNNING, "still running");
    t.ok(alive(pid), "the init lives");
  }
  t.ok(fs.existsSync(path.join(bundle, "criu-dump.log")), "criu-dump.log kept");
  t.same(
    fs.readdirSync(bundle).filter((f) => f.startsWith("criu-work")),
    [],
    "CRIU's temp work dir removed",
  );
  await t.rejects(task.checkpoint({ id: "c1", path: "relative" }), { code: Code.InvalidArgument });
  await t.rejects(
    task.checkpoint({ id: "c1", path: image, options: packAny(runcoptions.Options, {}) }),
    { code: Code.InvalidArgument },
    "options of another type",
  );
  await task.kill({ id: "c1", signal: 9 });
  await task.wait({ id: "c1" });
  await t.rejects(task.checkpoint({ id: "c1", path: image }), { code: Code.FailedPrecondition }, "stopped");
  await task.delete({ id: "c1" });
  t.notOk(
    topics(env, "c1").includes(Topics.taskCheckpointed),
    "no /tasks/checkpointed for a failed checkpoint",
  );
  await task.shutdown({ id: "c1" }).catch(() => {});
});
