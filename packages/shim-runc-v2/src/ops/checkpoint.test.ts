import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { packAny, runcoptions, tasktypes } from "@tsrunc/protocol/shim";
import { Code } from "@tsrunc/ttrpc";
import t, { type Test } from "tap";
import { ProcessState } from "../process/process-state.js";
import { type CheckpointOptions, RuncError } from "../runc/index.js";
import type { TaskEvents } from "../shim-context.js";
import {
  type CheckpointableInit,
  checkpointInit,
  checkpointOptions,
  runcCheckpointOptions,
} from "./checkpoint.js";

t.test("options: absent means defaults; only containerd.runc.v1.CheckpointOptions is accepted", async (t) => {
  t.same(checkpointOptions(undefined), runcoptions.CheckpointOptions.create());
  const o = checkpointOptions(packAny(runcoptions.CheckpointOptions, { exit: true, workPath: "/w" }));
  t.equal(o.exit, true);
  t.equal(o.workPath, "/w");
  t.throws(() => checkpointOptions(packAny(tasktypes.Process, { pid: 1 })), { code: Code.InvalidArgument });
  t.throws(
    () =>
      checkpointOptions({ typeUrl: runcoptions.CheckpointOptions.typeName, value: new Uint8Array([0xff]) }),
    { code: Code.InvalidArgument },
  );
});

t.test("options map onto runc's flags as containerd's shim maps them", async (t) => {
  const o = runcoptions.CheckpointOptions.create({
    openTcp: true,
    externalUnixSockets: true,
    terminal: true,
    fileLocks: true,
    emptyNamespaces: ["network"],
    cgroupsMode: "soft",
  });
  t.same(runcCheckpointOptions("/img", o, "/work"), {
    imagePath: "/img",
    workPath: "/work",
    leaveRunning: true,
    tcpEstablished: true,
    extUnixSk: true,
    shellJob: true,
    fileLocks: true,
    manageCgroupsMode: "soft",
    emptyNamespaces: ["network"],
  });
  t.equal(
    runcCheckpointOptions("/img", runcoptions.CheckpointOptions.create({ exit: true }), "/w").leaveRunning,
    false,
  );
  t.throws(
    () => runcCheckpointOptions("/i", runcoptions.CheckpointOptions.create({ cgroupsMode: "x" }), "/w"),
    {
      code: Code.InvalidArgument,
    },
  );
  t.throws(
    () =>
      runcCheckpointOptions("/i", runcoptions.CheckpointOptions.create({ emptyNamespaces: ["--x"] }), "/w"),
    { code: Code.InvalidArgument },
  );
});

function fake(
  t: Test,
  status: "created" | "running" | "paused",
  checkpoint: (o: CheckpointOptions) => Promise<void>,
) {
  const bundle = mkdtempSync(join(tmpdir(), "tsrunc-ckpt-"));
  t.teardown(() => rmSync(bundle, { recursive: true, force: true }));
  const state = new ProcessState();
  if (status !== "created") state.transition("running");
  if (status === "paused") state.transition("paused");
  const events: string[] = [];
  const init = {
    containerId: "c1",
    bundle,
    state,
    runc: { checkpoint: (_id: string, o: CheckpointOptions) => checkpoint(o) },
  } as unknown as CheckpointableInit;
  const ev = {
    checkpointed: (e: { containerId: string; checkpoint: string }) =>
      events.push(`${e.containerId} ${e.checkpoint}`),
  } as unknown as TaskEvents;
  return { init, ev, events, bundle };
}

const defaults = runcoptions.CheckpointOptions.create();

t.test(
  "a CRIU failure: the runc error's code and CRIU's lines, dump.log kept in the bundle, temp work dir gone",
  async (t) => {
    let workSeen = "";
    const f = fake(t, "running", async (o) => {
      workSeen = o.workPath ?? "";
      t.ok(o.leaveRunning, "without exit the container is left running");
      writeFileSync(
        join(workSeen, "dump.log"),
        "(00.001) Error (criu/kerndat.c:1): kerndat_vdso_fill_symtable failed\n",
      );
      throw new RuncError(
        "criu failed: type DUMP errno 0\ncriu: Error (criu/kerndat.c:1): kerndat_vdso_fill_symtable failed",
        {
          kind: "failed",
          command: "checkpoint",
        },
      );
    });
    await t.rejects(checkpointInit(f.init, f.ev, { path: "/img", options: defaults }), {
      code: Code.Unknown,
      message: new RegExp(
        `OCI runtime checkpoint failed: criu failed.*kerndat_vdso_fill_symtable failed\\ncriu log: ${f.bundle}/criu-dump.log`,
        "s",
      ),
    });
    t.ok(workSeen.startsWith(join(f.bundle, "criu-work-")), "work dir in the bundle");
    t.notOk(existsSync(workSeen), "temp work dir removed");
    t.match(readFileSync(join(f.bundle, "criu-dump.log"), "utf8"), /kerndat_vdso_fill_symtable/);
    t.equal(f.init.state.status, "running", "state unchanged");
    t.same(f.events, []);
  },
);

t.test(
  "a given work path is used and kept; success publishes /tasks/checkpointed; paused is fine",
  async (t) => {
    const work = mkdtempSync(join(tmpdir(), "tsrunc-ckpt-work-"));
    t.teardown(() => rmSync(work, { recursive: true, force: true }));
    const f = fake(t, "paused", async (o) => {
      t.equal(o.workPath, work);
      t.equal(o.imagePath, "/from-options", "the options' image path when the request has none");
      t.equal(o.leaveRunning, false);
    });
    const options = runcoptions.CheckpointOptions.create({
      exit: true,
      workPath: work,
      imagePath: "/from-options",
    });
    await checkpointInit(f.init, f.ev, { path: "", options });
    t.ok(existsSync(work), "kept");
    t.same(f.events, ["c1 /from-options"]);
    t.same(readdirSync(f.bundle), [], "nothing left in the bundle");
  },
);

t.test("refused before runc: created container, relative or missing path", async (t) => {
  const f = fake(t, "created", async () => {
    t.fail("runc must not run");
  });
  await t.rejects(checkpointInit(f.init, f.ev, { path: "/img", options: defaults }), {
    code: Code.FailedPrecondition,
  });
  const g = fake(t, "running", async () => {
    t.fail("runc must not run");
  });
  await t.rejects(checkpointInit(g.init, g.ev, { path: "img", options: defaults }), {
    code: Code.InvalidArgument,
  });
  await t.rejects(checkpointInit(g.init, g.ev, { path: "", options: defaults }), {
    code: Code.InvalidArgument,
  });
  const work = runcoptions.CheckpointOptions.create({ workPath: "rel" });
  await t.rejects(checkpointInit(g.init, g.ev, { path: "/img", options: work }), {
    code: Code.InvalidArgument,
  });
});
