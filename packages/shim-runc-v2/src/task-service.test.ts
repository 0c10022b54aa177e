// The Task service with an in-memory runc and reaper (process/fake-runc.ts): every state ×
// operation pair of process/process-state-table.ts as the wire answers it, and the lives of
// containers and execs, in milliseconds. The same behaviour with real runc: test/shim-*.test.ts.
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  cgroup1,
  cgroup2,
  OciLinuxResourcesType,
  OciProcessType,
  packAny,
  runcoptions,
  task,
  tasktypes,
} from "@tsrunc/protocol/shim";
import { BundleFile } from "@tsrunc/shim-contract/bundle-files";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import t, { type Test } from "tap";
import { FakeHost } from "./process/fake-runc.js";
import { type CheckpointOptions, RuncError } from "./runc/index.js";
import { TaskServiceImpl } from "./task-service.js";

interface Shim {
  svc: TaskServiceImpl;
  host: FakeHost;
  dir: string;
  shutdowns: number;
}

function shim(t: Test): Shim {
  const dir = mkdtempSync(join(tmpdir(), "tsrunc-task-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const host = new FakeHost();
  const s: Shim = { svc: undefined as unknown as TaskServiceImpl, host, dir, shutdowns: 0 };
  s.svc = new TaskServiceImpl(host.context(join(dir, "shim")), {
    onShutdown: () => {
      s.shutdowns++;
    },
  });
  return s;
}

const never = new AbortController().signal;
const spec = (args = ["/bin/true"]) => packAny(OciProcessType, { args, cwd: "/", user: { uid: 0, gid: 0 } });
const resources = (json = '{"pids":{"limit":10}}') => ({
  typeUrl: OciLinuxResourcesType.typeUrl,
  value: new TextEncoder().encode(json),
});

async function create(s: Shim, id: string) {
  const bundle = join(s.dir, id);
  mkdirSync(bundle, { recursive: true });
  return s.svc.create(task.CreateTaskRequest.create({ id, bundle }));
}
const start = (s: Shim, id: string, execId = "") => s.svc.start(task.StartRequest.create({ id, execId }));
const kill = (s: Shim, id: string, signal: number, execId = "") =>
  s.svc.kill(task.KillRequest.create({ id, execId, signal }));
const wait = (s: Shim, id: string, execId = "", signal = never) =>
  s.svc.wait(task.WaitRequest.create({ id, execId }), signal);
const del = (s: Shim, id: string, execId = "") => s.svc.delete(task.DeleteRequest.create({ id, execId }));
const state = (s: Shim, id: string, execId = "") => s.svc.state(task.StateRequest.create({ id, execId }));
const exec = (s: Shim, id: string, execId: string, args?: string[]) =>
  s.svc.exec(task.ExecProcessRequest.create({ id, execId, spec: spec(args) }));
const pause = (s: Shim, id: string) => s.svc.pause(task.PauseRequest.create({ id }));
const resume = (s: Shim, id: string) => s.svc.resume(task.ResumeRequest.create({ id }));
const update = (s: Shim, id: string, json?: string) =>
  s.svc.update(task.UpdateTaskRequest.create({ id, resources: resources(json) }));
const checkpoint = (s: Shim, id: string, path: string, options?: runcoptions.CheckpointOptions) =>
  s.svc.checkpoint(
    task.CheckpointTaskRequest.create({
      id,
      path,
      options: options ? packAny(runcoptions.CheckpointOptions, options) : undefined,
    }),
  );
const stats = (s: Shim, id: string) => s.svc.stats(task.StatsRequest.create({ id }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A Wait that is still waiting after a moment counts as allowed (it answers at the exit). */
async function waitAllowed(s: Shim, id: string, execId = "") {
  const ac = new AbortController();
  const w = wait(s, id, execId, ac.signal);
  setTimeout(() => ac.abort(), 5);
  await w.catch((err: unknown) => {
    if (!(err instanceof TtrpcError && err.code === Code.Canceled)) throw err;
  });
}

type Want = "ok" | "FP" | "NF";
type InitStatus = "created" | "running" | "paused" | "stopped" | "deleted";
const INIT_STATUSES: InitStatus[] = ["created", "running", "paused", "stopped", "deleted"];

/** Brings container `id` into `status`; `early` runs right after Create (to add an exec). */
async function initIn(s: Shim, id: string, status: InitStatus, early?: () => Promise<unknown>) {
  await create(s, id);
  await early?.();
  if (status === "created") return;
  await start(s, id);
  if (status === "paused") await pause(s, id);
  if (status === "stopped" || status === "deleted") {
    await kill(s, id, 9);
    await wait(s, id);
  }
  if (status === "deleted") await del(s, id);
}

async function outcome(p: Promise<unknown>): Promise<Want | string> {
  try {
    await p;
    return "ok";
  } catch (err) {
    if (err instanceof TtrpcError && err.code === Code.FailedPrecondition) return "FP";
    if (err instanceof TtrpcError && err.code === Code.NotFound) return "NF";
    return `unexpected ${(err as Error).message}`;
  }
}

// What the wire answers for each request to a container's init in each state. A deleted
// container is gone: every request names an unknown id. The rule for execs (add while created
// or running, start only while running) is explained in process/process-state-table.ts.
// biome-ignore format: a table
const INIT_WANT: Record<string, [Want, Want, Want, Want, Want]> = {
  //             created  running  paused  stopped  deleted
  start:        ["ok",    "FP",    "FP",   "FP",    "NF"],
  delete:       ["ok",    "FP",    "FP",   "ok",    "NF"],
  kill:         ["ok",    "ok",    "ok",   "NF",    "NF"],
  pause:        ["FP",    "ok",    "FP",   "FP",    "NF"],
  resume:       ["FP",    "FP",    "ok",   "FP",    "NF"],
  update:       ["ok",    "ok",    "ok",   "FP",    "NF"],
  checkpoint:   ["FP",    "ok",    "ok",   "FP",    "NF"],
  stats:        ["ok",    "ok",    "ok",   "FP",    "NF"],
  exec:         ["ok",    "ok",    "FP",   "FP",    "NF"],
  "exec-start": ["FP",    "ok",    "FP",   "FP",    "NF"],
  "resize-pty": ["ok",    "ok",    "ok",   "ok",    "NF"],
  "close-io":   ["ok",    "ok",    "ok",   "ok",    "NF"],
  state:        ["ok",    "ok",    "ok",   "ok",    "NF"],
  wait:         ["ok",    "ok",    "ok",   "ok",    "NF"],
  pids:         ["ok",    "ok",    "ok",   "ok",    "NF"],
};

const INIT_OPS: Record<string, (s: Shim, id: string) => Promise<unknown>> = {
  start: (s, id) => start(s, id),
  delete: (s, id) => del(s, id),
  kill: (s, id) => kill(s, id, 15),
  pause: (s, id) => pause(s, id),
  resume: (s, id) => resume(s, id),
  update: (s, id) => update(s, id),
  checkpoint: (s, id) => checkpoint(s, id, join(s.dir, `${id}-image`)),
  stats: (s, id) => stats(s, id),
  exec: (s, id) => exec(s, id, "added"),
  // The exec "early" was added while the container was created (see initIn below).
  "exec-start": (s, id) => start(s, id, "early"),
  "resize-pty": (s, id) => s.svc.resizePty(task.ResizePtyRequest.create({ id, width: 80, height: 24 })),
  "close-io": (s, id) => s.svc.closeIO(task.CloseIORequest.create({ id, stdin: true })),
  state: (s, id) => state(s, id),
  wait: (s, id) => waitAllowed(s, id),
  pids: (s, id) => s.svc.pids(task.PidsRequest.create({ id })),
};

t.test("every request to an init in every state: allowed, FailedPrecondition or NotFound", async (t) => {
  const s = shim(t);
  let n = 0;
  const got: string[] = [];
  const want: string[] = [];
  for (const [op, row] of Object.entries(INIT_WANT)) {
    for (const [i, status] of INIT_STATUSES.entries()) {
      const id = `c${n++}`;
      await initIn(s, id, status, op === "exec-start" ? () => exec(s, id, "early") : undefined);
      got.push(`${op} in ${status}: ${await outcome(INIT_OPS[op]!(s, id))}`);
      want.push(`${op} in ${status}: ${row[i]}`);
    }
  }
  t.same(got, want);
  t.equal(Object.keys(INIT_OPS).length, Object.keys(INIT_WANT).length, "every operation is tried");
});

type ExecStatus = "created" | "running" | "stopped" | "deleted";

// The same for an exec of a running container.
// biome-ignore format: a table
const EXEC_WANT: Record<string, [Want, Want, Want, Want]> = {
  //             created  running  stopped  deleted
  start:        ["ok",    "FP",    "FP",    "NF"],
  delete:       ["ok",    "FP",    "ok",    "NF"],
  kill:         ["FP",    "ok",    "NF",    "NF"],
  "resize-pty": ["ok",    "ok",    "ok",    "NF"],
  "close-io":   ["ok",    "ok",    "ok",    "NF"],
  state:        ["ok",    "ok",    "ok",    "NF"],
  wait:         ["ok",    "ok",    "ok",    "NF"],
};

const EXEC_OPS: Record<string, (s: Shim, id: string, execId: string) => Promise<unknown>> = {
  start: (s, id, e) => start(s, id, e),
  delete: (s, id, e) => del(s, id, e),
  kill: (s, id, e) => kill(s, id, 15, e),
  "resize-pty": (s, id, e) =>
    s.svc.resizePty(task.ResizePtyRequest.create({ id, execId: e, width: 80, height: 24 })),
  "close-io": (s, id, e) => s.svc.closeIO(task.CloseIORequest.create({ id, execId: e, stdin: true })),
  state: (s, id, e) => state(s, id, e),
  wait: (s, id, e) => waitAllowed(s, id, e),
};

t.test("every request to an exec in every state", async (t) => {
  const s = shim(t);
  await initIn(s, "c", "running");
  let n = 0;
  const got: string[] = [];
  const want: string[] = [];
  for (const [op, row] of Object.entries(EXEC_WANT)) {
    for (const [i, status] of (["created", "running", "stopped", "deleted"] as ExecStatus[]).entries()) {
      const e = `e${n++}`;
      await exec(s, "c", e);
      if (status !== "created") await start(s, "c", e);
      if (status === "stopped" || status === "deleted") {
        await kill(s, "c", 9, e);
        await wait(s, "c", e);
      }
      if (status === "deleted") await del(s, "c", e);
      got.push(`${op} in ${status}: ${await outcome(EXEC_OPS[op]!(s, "c", e))}`);
      want.push(`${op} in ${status}: ${row[i]}`);
    }
  }
  t.same(got, want);
});

t.test("refusals read like containerd's", async (t) => {
  const s = shim(t);
  await initIn(s, "c", "stopped");
  await t.rejects(start(s, "c"), {
    code: Code.FailedPrecondition,
    message: "cannot start a stopped process",
  });
  await t.rejects(pause(s, "c"), {
    code: Code.FailedPrecondition,
    message: "cannot pause a stopped process",
  });
  await t.rejects(exec(s, "c", "x"), {
    code: Code.FailedPrecondition,
    message: "cannot exec in a stopped container",
  });
  await t.rejects(kill(s, "c", 9), { code: Code.NotFound, message: "process already finished" });
  await initIn(s, "r", "running");
  await t.rejects(del(s, "r"), { code: Code.FailedPrecondition, message: "cannot delete a running process" });
  await exec(s, "r", "x");
  await t.rejects(kill(s, "r", 9, "x"), { code: Code.FailedPrecondition, message: "process not created" });
});

t.test("a container's life: create → start → exit → delete, events in order", async (t) => {
  const s = shim(t);
  const { pid } = await create(s, "c1");
  t.equal((await state(s, "c1")).status, tasktypes.Status.CREATED);
  t.equal((await start(s, "c1")).pid, pid);
  t.equal((await state(s, "c1")).status, tasktypes.Status.RUNNING);
  const waiting = wait(s, "c1");
  s.host.exit(pid, 3);
  t.equal((await waiting).exitStatus, 3);
  const st = await state(s, "c1");
  t.equal(st.status, tasktypes.Status.STOPPED);
  t.equal(st.exitStatus, 3);
  t.same((await s.svc.pids(task.PidsRequest.create({ id: "c1" }))).processes, [], "no pids once stopped");
  t.equal((await del(s, "c1")).exitStatus, 3);
  t.ok(existsSync(join(s.dir, "c1", BundleFile.deleted)), "the delete verb's answer is kept in the bundle");
  await t.rejects(state(s, "c1"), { code: Code.NotFound });
  t.same(s.host.events, ["create c1", "start c1", "exit c1 3", "delete c1 3"]);
  t.same(s.host.calls, ["create c1", "start c1", "delete c1"]);
  await s.svc.shutdown(task.ShutdownRequest.create({}));
  t.equal(s.shutdowns, 1, "Shutdown ends a shim with no container left");
});

t.test("an exit during Start is published after the start", async (t) => {
  const s = shim(t);
  const { pid } = await create(s, "c1");
  s.host.hooks.start = () => s.host.exit(pid, 0);
  await start(s, "c1");
  t.equal((await wait(s, "c1")).exitStatus, 0);
  t.same(s.host.events, ["create c1", "start c1", "exit c1 0"]);
});

t.test("a created container deleted without a start: runc delete --force, exit 137", async (t) => {
  const s = shim(t);
  await create(s, "c1");
  t.equal((await del(s, "c1")).exitStatus, 137);
  t.same(s.host.events, ["create c1", "exit c1 137", "delete c1 137"]);
});

t.test("two Deletes at once: one deletes, the other finds nothing", async (t) => {
  const s = shim(t);
  await initIn(s, "c1", "stopped");
  const results = await Promise.all([outcome(del(s, "c1")), outcome(del(s, "c1"))]);
  t.same(results, ["ok", "NF"]);
  t.same(
    s.host.events.filter((e) => e.startsWith("delete")),
    ["delete c1 137"],
    "one /tasks/delete",
  );
});

t.test("an exec's life: added, started, pids, killed, deleted", async (t) => {
  const s = shim(t);
  await create(s, "c1");
  await exec(s, "c1", "early");
  await t.rejects(start(s, "c1", "early"), { code: Code.FailedPrecondition }, "not before the init runs");
  await start(s, "c1");
  await exec(s, "c1", "x1");
  await t.rejects(exec(s, "c1", "x1"), { code: Code.AlreadyExists });
  t.equal((await state(s, "c1", "x1")).status, tasktypes.Status.CREATED);
  const { pid } = await start(s, "c1", "x1");
  t.equal((await state(s, "c1", "x1")).status, tasktypes.Status.RUNNING);
  const pids = await s.svc.pids(task.PidsRequest.create({ id: "c1" }));
  t.ok(
    pids.processes.some((p) => p.pid === pid && p.info),
    "pids marks the exec's process",
  );
  await kill(s, "c1", 9, "x1");
  t.equal((await wait(s, "c1", "x1")).exitStatus, 137);
  await t.rejects(kill(s, "c1", 9, "x1"), { code: Code.NotFound }, "kill of a finished exec");
  t.equal((await del(s, "c1", "x1")).exitStatus, 137);
  await t.rejects(state(s, "c1", "x1"), { code: Code.NotFound });
  t.equal((await del(s, "c1", "early")).exitStatus, 0, "a never started exec deletes with 0");
  t.same(s.host.events, [
    "create c1",
    "execAdded c1/early",
    "start c1",
    "execAdded c1/x1",
    "execStarted c1/x1",
    "exit c1/x1 137",
  ]);
});

t.test("the container's execs end with its init", async (t) => {
  const s = shim(t);
  await initIn(s, "c1", "running");
  await exec(s, "c1", "x1");
  await start(s, "c1", "x1");
  await kill(s, "c1", 9);
  t.equal((await wait(s, "c1", "x1")).exitStatus, 137);
  t.equal((await wait(s, "c1")).exitStatus, 137);
  await t.rejects(start(s, "c1", "never"), { code: Code.NotFound });
});

t.test("pause and resume: states, events, no exec while paused", async (t) => {
  const s = shim(t);
  await initIn(s, "c1", "running");
  await pause(s, "c1");
  t.equal((await state(s, "c1")).status, tasktypes.Status.PAUSED);
  await t.rejects(pause(s, "c1"), {
    code: Code.FailedPrecondition,
    message: "cannot pause a paused process",
  });
  await t.rejects(exec(s, "c1", "x"), { code: Code.FailedPrecondition });
  await resume(s, "c1");
  t.equal((await state(s, "c1")).status, tasktypes.Status.RUNNING);
  await t.rejects(resume(s, "c1"), {
    code: Code.FailedPrecondition,
    message: "cannot resume a running process",
  });
  t.same(s.host.events, ["create c1", "start c1", "paused c1", "resumed c1"]);
  t.same(s.host.calls, ["create c1", "start c1", "pause c1", "resume c1"], "runc only for valid requests");
});

t.test("concurrent pauses take turns: one pauses, the other is refused", async (t) => {
  const s = shim(t);
  await initIn(s, "c1", "running");
  s.host.hooks.pause = () => sleep(20);
  t.same(await Promise.all([outcome(pause(s, "c1")), outcome(pause(s, "c1"))]), ["ok", "FP"]);
  t.same(
    s.host.calls.filter((c) => c.startsWith("pause")),
    ["pause c1"],
  );
});

t.test("an exit while runc pauses: thawed again, refused, no /tasks/paused", async (t) => {
  const s = shim(t);
  await initIn(s, "c1", "running");
  const { pid } = await state(s, "c1");
  s.host.hooks.pause = async () => {
    s.host.exit(pid, 137);
    await sleep(1); // runc returns after the reaper has reported the exit
  };
  await t.rejects(pause(s, "c1"), {
    code: Code.FailedPrecondition,
    message: "cannot pause a stopped process",
  });
  t.same(s.host.calls.slice(-2), ["pause c1", "resume c1"], "what runc froze is thawed again");
  t.notOk(s.host.events.includes("paused c1"));
});

t.test("runc's own failure keeps its code; a paused init that exits is thawed", async (t) => {
  const s = shim(t);
  await initIn(s, "c1", "running");
  s.host.hooks.pause = () => {
    throw new RuncError("some freezer failure", { kind: "failed", command: "pause" });
  };
  await t.rejects(pause(s, "c1"), {
    code: Code.Unknown,
    message: /OCI runtime pause failed: some freezer failure/,
  });
  t.equal((await state(s, "c1")).status, tasktypes.Status.RUNNING);
  delete s.host.hooks.pause;
  await pause(s, "c1");
  await kill(s, "c1", 9);
  t.equal((await wait(s, "c1")).exitStatus, 137, "SIGKILL ends a paused container");
  await sleep(1);
  t.equal(s.host.calls.at(-1), "resume c1", "thawed after the exit");
});

t.test("update: the JSON as received, for created, running and paused containers", async (t) => {
  const s = shim(t);
  const seen: unknown[] = [];
  s.host.hooks.update = (_id, r) => {
    seen.push(r);
  };
  const big = '{"memory":{"limit":9223372036854775807}}';
  for (const status of ["created", "running", "paused"] as const) {
    await initIn(s, status, status);
    await update(s, status, big);
  }
  t.same(seen, [big, big, big], "64-bit values keep every digit");
  await t.rejects(update(s, "created", "[]"), { code: Code.InvalidArgument });
  s.host.hooks.update = () => {
    throw new RuncError("container does not exist", { kind: "not-found", command: "update" });
  };
  await t.rejects(update(s, "running"), {
    code: Code.NotFound,
    message: /OCI runtime update failed: container does not exist/,
  });
  const { pid } = await state(s, "running");
  s.host.hooks.update = async () => {
    s.host.exit(pid, 137);
    await sleep(1);
    throw new RuncError("container not running", { kind: "not-running", command: "update" });
  };
  await t.rejects(update(s, "running"), { code: Code.FailedPrecondition, message: /stopped/ });
});

t.test("stats: Metrics for created, running and paused; runc's errors keep their code", async (t) => {
  const s = shim(t);
  await initIn(s, "c1", "created");
  const r = await stats(s, "c1");
  t.ok(
    r.stats?.typeUrl === cgroup1.Metrics.typeName || r.stats?.typeUrl === cgroup2.Metrics.typeName,
    `${r.stats?.typeUrl}`,
  );
  s.host.hooks.stats = () => {
    throw new RuncError("container does not exist", { kind: "not-found", command: "events" });
  };
  await t.rejects(stats(s, "c1"), { code: Code.NotFound });
});

t.test("checkpoint: a CRIU failure keeps dump.log in the bundle, removes the temp work dir", async (t) => {
  const s = shim(t);
  await initIn(s, "c1", "running");
  const bundle = join(s.dir, "c1");
  let work = "";
  s.host.hooks.checkpoint = (_id, o) => {
    work = (o as CheckpointOptions).workPath ?? "";
    t.ok((o as CheckpointOptions).leaveRunning, "without exit the container is left running");
    writeFileSync(
      join(work, "dump.log"),
      "(00.001) Error (criu/kerndat.c:1): kerndat_vdso_fill_symtable failed\n",
    );
    throw new RuncError("criu failed: type DUMP errno 0", { kind: "failed", command: "checkpoint" });
  };
  await t.rejects(checkpoint(s, "c1", "/img"), {
    code: Code.Unknown,
    message: new RegExp(
      `OCI runtime checkpoint failed: criu failed.*\\ncriu log: ${bundle}/criu-dump.log`,
      "s",
    ),
  });
  t.ok(work.startsWith(join(bundle, "criu-work-")), "work dir in the bundle");
  t.notOk(existsSync(work), "temp work dir removed");
  t.match(readFileSync(join(bundle, "criu-dump.log"), "utf8"), /kerndat_vdso_fill_symtable/);
  t.equal((await state(s, "c1")).status, tasktypes.Status.RUNNING, "state unchanged");
  t.notOk(s.host.events.some((e) => e.startsWith("checkpointed")));
});

t.test("checkpoint: a given work path is kept; paused is fine; /tasks/checkpointed", async (t) => {
  const s = shim(t);
  await initIn(s, "c1", "paused");
  const work = join(s.dir, "work");
  mkdirSync(work);
  s.host.hooks.checkpoint = (_id, o) => {
    const opts = o as CheckpointOptions;
    t.equal(opts.workPath, work);
    t.equal(opts.imagePath, "/from-options", "the options' image path when the request has none");
    t.equal(opts.leaveRunning, false);
  };
  await checkpoint(
    s,
    "c1",
    "",
    runcoptions.CheckpointOptions.create({ exit: true, workPath: work, imagePath: "/from-options" }),
  );
  t.ok(existsSync(work), "kept");
  t.equal(s.host.events.at(-1), "checkpointed c1");
  t.same(
    readdirSync(join(s.dir, "c1")).filter((f) => f.startsWith("criu")),
    [],
    "nothing of CRIU's left in the bundle",
  );
});

t.test("checkpoint: bad paths are InvalidArgument before the state is looked at", async (t) => {
  const s = shim(t);
  await initIn(s, "c1", "created");
  await t.rejects(checkpoint(s, "c1", "img"), { code: Code.InvalidArgument });
  await t.rejects(checkpoint(s, "c1", "/img"), { code: Code.FailedPrecondition });
  t.notOk(
    s.host.calls.some((c) => c.startsWith("checkpoint")),
    "runc never ran",
  );
});
