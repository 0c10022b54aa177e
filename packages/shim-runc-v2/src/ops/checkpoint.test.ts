import { packAny, runcoptions, tasktypes } from "@tsrunc/protocol/shim";
import { Code } from "@tsrunc/ttrpc";
import t from "tap";
import { checkpointOptions, checkpointPaths, runcCheckpointOptions } from "./checkpoint.js";

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

const defaults = runcoptions.CheckpointOptions.create();

// The checkpoint itself (states, CRIU's log, events): task-service.test.ts, with a fake runc.
t.test("paths: the request's, else the options'; absolute only", async (t) => {
  const o = runcoptions.CheckpointOptions.create({ imagePath: "/from-options", workPath: "/w" });
  t.same(checkpointPaths("/img", o), { imagePath: "/img", workPath: "/w" });
  t.same(checkpointPaths("", o), { imagePath: "/from-options", workPath: "/w" });
  t.same(checkpointPaths("/img", defaults), { imagePath: "/img", workPath: undefined });
  t.throws(() => checkpointPaths("img", defaults), { code: Code.InvalidArgument });
  t.throws(() => checkpointPaths("", defaults), { code: Code.InvalidArgument });
  t.throws(() => checkpointPaths("/img", runcoptions.CheckpointOptions.create({ workPath: "rel" })), {
    code: Code.InvalidArgument,
  });
});
