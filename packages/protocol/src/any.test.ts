// Any packing: the exact type URLs containerd 1.6 writes and expects, and registry round trips.

import t from "tap";
import {
  AnyRegistry,
  anyRegistry,
  cgroup1,
  cgroup2,
  events,
  goJsonStringify,
  isAnyOf,
  jsonType,
  OciLinuxResourcesType,
  OciProcessType,
  OciSpecType,
  OciWindowsResourcesType,
  packAny,
  protobuf,
  runcoptions,
  Topics,
  task,
  tasktypes,
  topicOf,
  typeUrlOf,
  unpackAny,
  unpackAnyAs,
} from "./shim.js";

t.test("type URLs are bare proto names for messages (typeurl.MarshalAny of a proto.Message)", async (t) => {
  const want: [{ typeName: string }, string][] = [
    [events.TaskCreate, "containerd.events.TaskCreate"],
    [events.TaskStart, "containerd.events.TaskStart"],
    [events.TaskDelete, "containerd.events.TaskDelete"],
    [events.TaskIO, "containerd.events.TaskIO"],
    [events.TaskExit, "containerd.events.TaskExit"],
    [events.TaskOOM, "containerd.events.TaskOOM"],
    [events.TaskExecAdded, "containerd.events.TaskExecAdded"],
    [events.TaskExecStarted, "containerd.events.TaskExecStarted"],
    [events.TaskPaused, "containerd.events.TaskPaused"],
    [events.TaskResumed, "containerd.events.TaskResumed"],
    [events.TaskCheckpointed, "containerd.events.TaskCheckpointed"],
    [runcoptions.Options, "containerd.runc.v1.Options"],
    [runcoptions.CheckpointOptions, "containerd.runc.v1.CheckpointOptions"],
    [runcoptions.ProcessDetails, "containerd.runc.v1.ProcessDetails"],
    [cgroup1.Metrics, "io.containerd.cgroups.v1.Metrics"],
    [cgroup2.Metrics, "io.containerd.cgroups.v2.Metrics"],
    [tasktypes.ProcessInfo, "containerd.v1.types.ProcessInfo"],
    [protobuf.Timestamp, "google.protobuf.Timestamp"],
  ];
  for (const [type, url] of want) {
    t.equal(type.typeName, url);
    t.equal(packAny(type as never, {}).typeUrl, url);
  }
});

t.test(
  "type URLs of the runtime-spec JSON types (typeurl.Register in containerd's runtime package)",
  async (t) => {
    t.equal(typeUrlOf(OciSpecType), "types.containerd.io/opencontainers/runtime-spec/1/Spec");
    t.equal(typeUrlOf(OciProcessType), "types.containerd.io/opencontainers/runtime-spec/1/Process");
    t.equal(
      typeUrlOf(OciLinuxResourcesType),
      "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
    );
    t.equal(
      typeUrlOf(OciWindowsResourcesType),
      "types.containerd.io/opencontainers/runtime-spec/1/WindowsResources",
    );
  },
);

t.test("message Anys round-trip through the registry", async (t) => {
  const exit = { containerId: "c", id: "e", pid: 7, exitStatus: 1, exitedAt: { seconds: 5, nanos: 6 } };
  const any = packAny(events.TaskExit, exit);
  t.same(unpackAny(any), exit);
  t.same(unpackAnyAs(any, events.TaskExit), exit);
  t.ok(isAnyOf(any, events.TaskExit));
  t.notOk(isAnyOf(any, events.TaskStart));
  t.notOk(isAnyOf(undefined, events.TaskStart));

  const opts = runcoptions.Options.create({ systemdCgroup: true, binaryName: "runc" });
  const byUrl = packAny("containerd.runc.v1.Options", opts);
  t.same(unpackAny(byUrl), opts);
  t.same(unpackAnyAs(protobuf.Any.decode(protobuf.Any.encode(byUrl)), runcoptions.Options), opts);

  const stats = cgroup2.Metrics.create({ memory: { usage: 1n << 40n, usageLimit: 2n ** 64n - 1n } });
  t.same(unpackAnyAs(packAny(cgroup2.Metrics, stats), cgroup2.Metrics), stats);
});

t.test(
  "a URL with a host prefix is accepted for protobuf types (as protobuf-go's anypb writes it)",
  async (t) => {
    const any = {
      typeUrl: "type.googleapis.com/containerd.events.TaskOOM",
      value: events.TaskOOM.encode({ containerId: "c" }),
    };
    t.same(unpackAny(any), { containerId: "c" });
    t.ok(isAnyOf(any, events.TaskOOM));
    t.same(unpackAnyAs(any, events.TaskOOM), { containerId: "c" });
    // …but not for the path-like JSON type URLs, which must match exactly
    t.equal(
      anyRegistry.lookup("example.com/types.containerd.io/opencontainers/runtime-spec/1/Process"),
      undefined,
    );
  },
);

t.test("JSON Anys: runtime-spec Process and LinuxResources", async (t) => {
  const proc = { terminal: true, user: { uid: 1, gid: 2 }, args: ["sh"], env: ["A=b"], cwd: "/" };
  const any = packAny(OciProcessType, proc);
  t.equal(Buffer.from(any.value).toString(), JSON.stringify(proc));
  t.same(unpackAny(any), proc);
  t.same(unpackAnyAs(any, OciProcessType), proc);

  const res = { memory: { limit: 1 << 30 }, cpu: { shares: 512, cpus: "0-1" }, pids: { limit: 64 } };
  const update = task.UpdateTaskRequest.create({ id: "c", resources: packAny(OciLinuxResourcesType, res) });
  const back = task.UpdateTaskRequest.decode(task.UpdateTaskRequest.encode(update));
  t.ok(back.resources && isAnyOf(back.resources, OciLinuxResourcesType));
  t.same(back.resources && unpackAnyAs(back.resources, OciLinuxResourcesType), res);
});

t.test("Go-style JSON escaping", async (t) => {
  t.equal(
    goJsonStringify({ s: "<a href='x'>&</a>\u2028\u2029" }),
    '{"s":"\\u003ca href=\'x\'\\u003e\\u0026\\u003c/a\\u003e\\u2028\\u2029"}',
  );
  t.equal(JSON.parse(goJsonStringify({ s: "<>&\u2028" })).s, "<>&\u2028");
  t.throws(() => goJsonStringify(undefined));
});

t.test("errors: unknown URL, wrong type, bad JSON, conflicting registration", async (t) => {
  t.throws(
    () => unpackAny({ typeUrl: "containerd.events.Nope", value: new Uint8Array() }),
    /no type registered/,
  );
  t.throws(() => packAny("containerd.events.Nope", {}), /no type registered/);
  t.equal(anyRegistry.lookup("containerd.events.Nope"), undefined);
  const exit = packAny(events.TaskExit, {});
  t.throws(() => unpackAnyAs(exit, events.TaskStart), /not containerd.events.TaskStart/);
  t.throws(() => unpackAnyAs(exit, OciProcessType), /not types.containerd.io/);
  const badJson = { typeUrl: typeUrlOf(OciProcessType), value: Buffer.from("{nope") };
  t.throws(() => unpackAny(badJson), /bad JSON/);
  t.throws(
    () => new AnyRegistry().register(OciSpecType, jsonType(typeUrlOf(OciSpecType))),
    /already registered/,
  );
  t.doesNotThrow(() => new AnyRegistry().register(OciSpecType, OciSpecType), "same type twice is fine");
});

t.test("a private registry with a type of one's own", async (t) => {
  const Mine = jsonType<{ n: number }>("example.com/mine/1/Thing");
  const reg = new AnyRegistry().register(Mine, events.TaskExit);
  const any = packAny("example.com/mine/1/Thing", { n: 3 }, reg);
  t.same(unpackAny(any, reg), { n: 3 });
  t.throws(() => unpackAny(any), "not in the default registry");
  t.same(reg.typeUrls().sort(), ["containerd.events.TaskExit", "example.com/mine/1/Thing"]);
});

t.test("the default registry knows every shim-side message and the JSON types", async (t) => {
  const urls = new Set(anyRegistry.typeUrls());
  for (const u of [
    "containerd.events.TaskExit",
    "containerd.events.ContainerCreate",
    "containerd.runc.v1.Options",
    "io.containerd.cgroups.v1.Metrics",
    "io.containerd.cgroups.v2.Metrics",
    "containerd.task.v2.CreateTaskRequest",
    "containerd.services.events.ttrpc.v1.Envelope",
    "google.rpc.Status",
    "types.containerd.io/opencontainers/runtime-spec/1/Spec",
    "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources",
  ]) {
    t.ok(urls.has(u), u);
  }
  t.notOk(urls.has("containerd.services.tasks.v1.CreateTaskRequest"), "daemon API types are not registered");
});

t.test("topics match event types", async (t) => {
  const pairs: [{ typeName: string }, string][] = [
    [events.TaskCreate, "/tasks/create"],
    [events.TaskStart, "/tasks/start"],
    [events.TaskExit, "/tasks/exit"],
    [events.TaskDelete, "/tasks/delete"],
    [events.TaskExecAdded, "/tasks/exec-added"],
    [events.TaskExecStarted, "/tasks/exec-started"],
    [events.TaskPaused, "/tasks/paused"],
    [events.TaskResumed, "/tasks/resumed"],
    [events.TaskOOM, "/tasks/oom"],
    [events.TaskCheckpointed, "/tasks/checkpointed"],
    [events.ContainerCreate, "/containers/create"],
    [events.ContainerUpdate, "/containers/update"],
    [events.ContainerDelete, "/containers/delete"],
  ];
  for (const [type, topic] of pairs) {
    t.equal(topicOf(type), topic);
    t.equal(topicOf(type.typeName), topic);
  }
  t.equal(Topics.taskExit, "/tasks/exit");
  t.equal(topicOf(events.TaskIO), undefined);
});
