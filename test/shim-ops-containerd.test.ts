// Pause/Resume, Update, Stats (ctr task metrics), OOM events and Checkpoint of our shim under a
// real containerd 1.6. ctr 1.6 has no `task update`, so Update goes through containerd's gRPC
// Tasks API (test/helpers/grpc-unary.ts). Each test has its own containerd with our bundled shim
// installed into its temp root (scripts/install; `npm run build` first).
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { OciLinuxResourcesType, packAny, tasksapi } from "@tsrunc/protocol";
import t, { type Test } from "tap";
import { assertNoLeaks } from "./helpers/cleanup.js";
import type { Containerd } from "./helpers/containerd.js";
import { GrpcError, grpcUnary } from "./helpers/grpc-unary.js";
import { LineReader } from "./helpers/lines.js";
import { containerdWithOurShim } from "./helpers/our-shim.js";
import { alive } from "./helpers/shim.js";
import { waitFor } from "./helpers/wait.js";

const RUNTIME = "io.containerd.tsrunc.v2";
const _REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const MiB = 1024 * 1024;
const HOG = "x=a; while true; do x=$x$x; done";

function run(cd: Containerd, flags: string[], id: string, cmd: string[]) {
  return cd.ctr([
    "run",
    "-d",
    ...flags,
    "--runtime",
    RUNTIME,
    "--rootfs",
    cd.rootfs(`rootfs-${id}`),
    id,
    ...cmd,
  ]);
}

async function status(cd: Containerd, id: string): Promise<string | undefined> {
  const r = await cd.ctr(["task", "ls"]);
  for (const line of r.stdout.split("\n").slice(1)) {
    const [tid, , st] = line.trim().split(/\s+/);
    if (tid === id) return st;
  }
  return undefined;
}

const waitStatus = (cd: Containerd, id: string, want: string) =>
  waitFor(async () => (await status(cd, id)) === want, {
    what: `${id} ${want}`,
    timeoutMs: 10_000,
    intervalMs: 50,
  });

function initPid(cd: Containerd, id: string): number {
  return Number(fs.readFileSync(path.join(cd.bundleDir(id), "init.pid"), "utf8"));
}

function cgroupDir(pid: number, controller: string): string {
  const line = fs
    .readFileSync(`/proc/${pid}/cgroup`, "utf8")
    .split("\n")
    .find((l) => l.split(":")[1]?.split(",").includes(controller));
  if (!line) throw new Error(`no ${controller} cgroup for ${pid}`);
  return path.join("/sys/fs/cgroup", controller, line.slice(line.indexOf(":", line.indexOf(":") + 1) + 1));
}

/** `ctr events` from now on: [time, topic, event] of one container's /tasks/* events. */
async function events(cd: Containerd) {
  const reader = new LineReader(cd.ctrSpawn(["events"]).stdout);
  // ctr subscribes asynchronously: wait until it sees something of ours.
  await waitFor(
    async () => {
      await cd.ctr(["namespaces", "label", cd.namespace, `probe=${Date.now()}`]);
      return reader.lines.some((l) => l.includes("/namespaces/update"));
    },
    { what: "ctr events subscribed", timeoutMs: 10_000, intervalMs: 100 },
  );
  const parse = (line: string) => {
    const m = /^(\S+ \S+ \S+ \S+) \S+ (\/tasks\/\S+) (\{.*\})$/.exec(line);
    return m
      ? { time: new Date(m[1]!.replace(/ \+0000 UTC$/, "Z")), topic: m[2]!, event: JSON.parse(m[3]!) }
      : undefined;
  };
  return {
    of: (id: string) =>
      reader.lines.map(parse).filter((e): e is NonNullable<typeof e> => e?.event.container_id === id),
    waitFor: (id: string, topic: string, timeoutMs = 10_000) =>
      reader.waitFor((l) => {
        const e = parse(l);
        return e?.topic === topic && e.event.container_id === id;
      }, timeoutMs),
  };
}

/** Removes the task and container (the shim exits), then checks nothing is left. */
async function finish(t: Test, cd: Containerd, ids: string[]): Promise<void> {
  for (const id of ids) {
    const st = await status(cd, id);
    if (st && st !== "STOPPED") {
      await cd.ctr(["task", "kill", "-s", "KILL", id]);
      await waitStatus(cd, id, "STOPPED");
    }
    if (st) await cd.ctr(["task", "rm", id]);
    t.equal((await cd.ctr(["containers", "rm", id])).exitCode, 0, `containers rm ${id}`);
  }
  t.same(await cd.stop(), [], "stop() found nothing to clean up by force");
  assertNoLeaks(t, cd.scope);
}

t.test("ctr task pause/resume: PAUSED, frozen, events; SIGKILL while paused stops the task", async (t) => {
  const cd = await containerdWithOurShim(t);
  const ev = await events(cd);
  t.equal((await run(cd, [], "p1", ["/bin/sleep", "1000"])).exitCode, 0);
  const freezer = cgroupDir(initPid(cd, "p1"), "freezer");

  const pause = await cd.ctr(["task", "pause", "p1"]);
  t.equal(pause.exitCode, 0, pause.stderr);
  t.equal(await status(cd, "p1"), "PAUSED", "ctr task ls: PAUSED");
  t.equal(fs.readFileSync(path.join(freezer, "freezer.state"), "utf8").trim(), "FROZEN");
  const again = await cd.ctr(["task", "pause", "p1"]);
  t.not(again.exitCode, 0, "pausing a paused task fails");
  t.match(again.stderr, /failed precondition|cannot pause/, again.stderr);
  const resume = await cd.ctr(["task", "resume", "p1"]);
  t.equal(resume.exitCode, 0, resume.stderr);
  t.equal(await status(cd, "p1"), "RUNNING");
  t.equal(fs.readFileSync(path.join(freezer, "freezer.state"), "utf8").trim(), "THAWED");

  t.equal((await cd.ctr(["task", "pause", "p1"])).exitCode, 0);
  const killed = performance.now();
  t.equal((await cd.ctr(["task", "kill", "-s", "KILL", "p1"])).exitCode, 0);
  await waitStatus(cd, "p1", "STOPPED");
  t.comment(`SIGKILL while paused: STOPPED after ${(performance.now() - killed).toFixed(0)} ms`);
  const exit = await ev.waitFor("p1", "/tasks/exit");
  t.match(exit, /"exit_status":137/);
  t.same(
    ev.of("p1").map((e) => e.topic),
    ["/tasks/create", "/tasks/start", "/tasks/paused", "/tasks/resumed", "/tasks/paused", "/tasks/exit"],
    "events in order",
  );
  const rm = await cd.ctr(["task", "rm", "p1"]);
  t.match(rm.stderr, /exit code 137/);
  await finish(t, cd, ["p1"]);
});

t.test(
  "Update through containerd's Tasks API sets the cgroup's limits; bad resources are InvalidArgument",
  async (t) => {
    const cd = await containerdWithOurShim(t);
    t.equal((await run(cd, [], "u1", ["/bin/sleep", "1000"])).exitCode, 0);
    const pid = initPid(cd, "u1");
    const update = (resources: { typeUrl: string; value: Uint8Array }) =>
      grpcUnary(
        cd.grpcAddress,
        "containerd.services.tasks.v1.Tasks",
        "Update",
        tasksapi.UpdateTaskRequest.encode({ containerId: "u1", resources }),
        { "containerd-namespace": cd.namespace },
      );
    await update(packAny(OciLinuxResourcesType, { memory: { limit: 64 * MiB }, pids: { limit: 50 } }));
    t.equal(
      fs.readFileSync(path.join(cgroupDir(pid, "memory"), "memory.limit_in_bytes"), "utf8").trim(),
      String(64 * MiB),
      "memory.limit_in_bytes",
    );
    t.equal(fs.readFileSync(path.join(cgroupDir(pid, "pids"), "pids.max"), "utf8").trim(), "50", "pids.max");
    const bad = await update({
      typeUrl: OciLinuxResourcesType.typeUrl,
      value: new TextEncoder().encode("[1]"),
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(bad instanceof GrpcError && bad.code === 3, `InvalidArgument reaches the client: ${String(bad)}`);
    await finish(t, cd, ["u1"]);
  },
);

/** `ctr task metrics` (table) as METRIC → VALUE. */
async function metrics(cd: Containerd, id: string): Promise<Map<string, string>> {
  const r = await cd.ctr(["task", "metrics", id]);
  if (r.exitCode !== 0) throw new Error(`${r.command}: ${r.stderr}`);
  const out = new Map<string, string>();
  for (const line of r.stdout.split("\n")) {
    const m = /^(\S+)\s+(.+?)\s*$/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

t.test("ctr task metrics prints real numbers that move under load", async (t) => {
  const cd = await containerdWithOurShim(t);
  t.equal((await run(cd, [], "m1", ["/bin/sh", "-c", "while true; do :; done"])).exitCode, 0);
  const a = await metrics(cd, "m1");
  const cpuA = BigInt(a.get("cpuacct.usage") ?? "0");
  // 100 ms of CPU: half a second on an idle machine, longer when other test files share the
  // two cores, so poll rather than sleep a fixed time.
  let b = a;
  let cpuB = cpuA;
  await waitFor(
    async () => {
      b = await metrics(cd, "m1");
      cpuB = BigInt(b.get("cpuacct.usage") ?? "0");
      return cpuB - cpuA > 100_000_000n;
    },
    { what: "cpuacct.usage to grow by 100 ms", timeoutMs: 20_000, intervalMs: 250 },
  ).catch(() => {});
  t.ok(cpuB - cpuA > 100_000_000n, `cpuacct.usage grows under a busy loop: ${cpuA} → ${cpuB}`);
  t.ok(Number(b.get("memory.usage_in_bytes")) > 0, `memory.usage_in_bytes ${b.get("memory.usage_in_bytes")}`);
  t.ok(Number(b.get("memory.limit_in_bytes")) > 0, "memory.limit_in_bytes");
  t.ok(Number(b.get("pids.current")) >= 1, `pids.current ${b.get("pids.current")}`);
  t.match(b.get("cpuacct.usage_percpu") ?? "", /^\[\d+( \d+)*\]$/, "per-cpu usage");

  const json = await cd.ctr(["task", "metrics", "--format", "json", "m1"]);
  t.equal(json.exitCode, 0, json.stderr);
  const m = JSON.parse(json.stdout);
  t.ok(
    m.pids?.current >= 1 && m.cpu?.usage?.total > 0 && m.memory?.usage?.usage > 0,
    "json format decodes too",
  );
  await finish(t, cd, ["m1"]);
});

t.test("OOM under --memory-limit: /tasks/oom before /tasks/exit, exit 137", async (t) => {
  const cd = await containerdWithOurShim(t);
  const ev = await events(cd);
  const r = await run(cd, ["--memory-limit", String(16 * MiB)], "o1", ["/bin/sh", "-c", HOG]);
  t.equal(r.exitCode, 0, r.stderr);
  await ev.waitFor("o1", "/tasks/exit");
  const got = ev.of("o1");
  t.same(
    got.map((e) => e.topic),
    ["/tasks/create", "/tasks/start", "/tasks/oom", "/tasks/exit"],
    "oom, then exit",
  );
  const oom = got.find((e) => e.topic === "/tasks/oom")!;
  const exit = got.find((e) => e.topic === "/tasks/exit")!;
  t.equal(exit.event.exit_status, 137, "killed");
  t.comment(`ctr events: /tasks/oom ${exit.time.getTime() - oom.time.getTime()} ms before /tasks/exit`);
  await waitStatus(cd, "o1", "STOPPED");
  await finish(t, cd, ["o1"]);
});

t.test("ctr task checkpoint fails promptly with CRIU's message; the task keeps running", async (t) => {
  const cd = await containerdWithOurShim(t);
  const ev = await events(cd);
  t.equal((await run(cd, [], "c1", ["/bin/sleep", "1000"])).exitCode, 0);
  const pid = initPid(cd, "c1");
  // ctr fills CheckpointOptions (--exit, --image-path) only for runtimes named io.containerd.runc.*,
  // so ours gets none either way; containerd passes a temp dir of its own as the image path.
  for (const flags of [[], ["--exit"]]) {
    const started = performance.now();
    const r = await cd.ctr(["task", "checkpoint", ...flags, "c1"], { timeout: 30_000 });
    const ms = performance.now() - started;
    t.comment(
      `ctr task checkpoint ${flags.join(" ")}: exit ${r.exitCode} in ${ms.toFixed(0)} ms: ${r.stderr}`,
    );
    t.not(r.exitCode, 0, "fails");
    t.notOk(r.timedOut, "does not hang");
    t.match(r.stderr, /OCI runtime checkpoint failed: criu failed/, "runc's message");
    t.match(r.stderr, /criu: /, "CRIU's own lines");
    t.ok(ms < 10_000, "promptly");
    // ctr pauses the task around a checkpoint and resumes it afterwards.
    await waitStatus(cd, "c1", "RUNNING");
    t.ok(alive(pid), "the init lives");
  }
  t.same(
    ev.of("c1").map((e) => e.topic),
    ["/tasks/create", "/tasks/start", "/tasks/paused", "/tasks/resumed", "/tasks/paused", "/tasks/resumed"],
    "ctr's pause and resume around each attempt; no /tasks/checkpointed",
  );
  await finish(t, cd, ["c1"]);
});
