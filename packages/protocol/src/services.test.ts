// Service descriptors: wire names, method names, stream kinds and message types as in the
// .proto files; their TypeScript types as ttrpc's client stubs and server handlers see them;
// and a live call through our ttrpc client and server.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client, type ClientStub, Server, type ServiceImpl } from "@tsrunc/ttrpc";
import type protobufjs from "protobufjs";
import t from "tap";
import { ContainersService, EventsService, eventsapi, TasksService, type tasksapi } from "./daemon.js";
import type { MessageInit } from "./runtime.js";
import { EventsTtrpcService, type protobuf, TaskService, task, type ttrpcevents } from "./shim.js";
import { reflectionRoot } from "./test-support.js";

// ---- compile-time checks: these lines only compile if the types are exactly right ----------

type Equals<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;
const assertType = <_T extends true>() => {};

type TaskStub = ClientStub<typeof TaskService>;
assertType<Equals<ReturnType<TaskStub["create"]>, Promise<task.CreateTaskResponse>>>();
assertType<Equals<Parameters<TaskStub["create"]>[0], MessageInit<task.CreateTaskRequest>>>();
assertType<Equals<ReturnType<TaskStub["kill"]>, Promise<protobuf.Empty>>>();
assertType<Equals<ReturnType<TaskStub["wait"]>, Promise<task.WaitResponse>>>();
type TaskImpl = ServiceImpl<typeof TaskService>;
assertType<Equals<Parameters<TaskImpl["state"]>[0], task.StateRequest>>();
type EventsStub = ClientStub<typeof EventsService>;
assertType<Equals<ReturnType<EventsStub["subscribe"]>, AsyncIterable<eventsapi.Envelope>>>();
type ForwardStub = ClientStub<typeof EventsTtrpcService>;
assertType<Equals<Parameters<ForwardStub["forward"]>[0], MessageInit<ttrpcevents.ForwardRequest>>>();
type TasksStub = ClientStub<typeof TasksService>;
assertType<Equals<ReturnType<TasksStub["listPids"]>, Promise<tasksapi.ListPidsResponse>>>();

// ---- descriptors against the .proto files ----------------------------------------------------

const root = reflectionRoot();

interface Asserts {
  same(found: unknown, wanted: unknown, message: string): unknown;
}

function checkAgainstProto(t: Asserts, desc: { name: string; methods: object }) {
  const svc = root.lookupService(desc.name);
  const methods = desc.methods as Record<
    string,
    { name: string; kind: string; requestType: { typeName: string }; responseType: { typeName: string } }
  >;
  t.same(
    Object.keys(methods),
    svc.methodsArray.map((m) => m.name[0]?.toLowerCase() + m.name.slice(1)),
    "one lowerCamel key per rpc, in .proto order",
  );
  for (const m of svc.methodsArray) {
    const d = methods[m.name[0]?.toLowerCase() + m.name.slice(1)];
    const kind = m.requestStream
      ? m.responseStream
        ? "bidi"
        : "client"
      : m.responseStream
        ? "server"
        : "unary";
    t.same(
      d && { name: d.name, kind: d.kind, req: d.requestType.typeName, res: d.responseType.typeName },
      {
        name: m.name,
        kind,
        req: (m.resolvedRequestType as protobufjs.Type).fullName.slice(1),
        res: (m.resolvedResponseType as protobufjs.Type).fullName.slice(1),
      },
      `${desc.name}/${m.name}`,
    );
  }
}

t.test("containerd.task.v2.Task", async (t) => {
  t.equal(TaskService.name, "containerd.task.v2.Task");
  t.same(
    Object.values(TaskService.methods).map((m) => m.name),
    [
      "State",
      "Create",
      "Start",
      "Delete",
      "Pids",
      "Pause",
      "Resume",
      "Checkpoint",
      "Kill",
      "Exec",
      "ResizePty",
      "CloseIO",
      "Update",
      "Wait",
      "Stats",
      "Connect",
      "Shutdown",
    ],
  );
  t.equal(TaskService.methods.resizePty.name, "ResizePty");
  t.equal(TaskService.methods.closeIO.name, "CloseIO");
  checkAgainstProto(t, TaskService);
});

t.test("containerd.services.events.ttrpc.v1.Events", async (t) => {
  t.equal(EventsTtrpcService.name, "containerd.services.events.ttrpc.v1.Events");
  t.same(Object.keys(EventsTtrpcService.methods), ["forward"]);
  checkAgainstProto(t, EventsTtrpcService);
});

t.test("the daemon's services", async (t) => {
  t.equal(ContainersService.name, "containerd.services.containers.v1.Containers");
  t.equal(TasksService.name, "containerd.services.tasks.v1.Tasks");
  t.equal(EventsService.name, "containerd.services.events.v1.Events");
  t.equal(EventsService.methods.subscribe.kind, "server");
  t.equal(ContainersService.methods.listStream.kind, "server");
  t.equal(Object.keys(TasksService.methods).length, 17);
  for (const d of [ContainersService, TasksService, EventsService]) checkAgainstProto(t, d);
});

// ---- a live call over our ttrpc --------------------------------------------------------------

t.test("Task/Create and Events/Subscribe through our ttrpc client and server", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "protocol-svc-"));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const sock = path.join(dir, "s.sock");
  const seen: task.CreateTaskRequest[] = [];
  const taskImpl: Partial<TaskImpl> = {
    create: async (req) => {
      seen.push(req);
      return { pid: 4242 };
    },
  };
  const eventsImpl: Partial<ServiceImpl<typeof EventsService>> = {
    subscribe: async function* (req) {
      for (const topic of req.filters) {
        yield eventsapi.Envelope.create({ topic, namespace: "ns", timestamp: { seconds: 1, nanos: 2 } });
      }
    },
  };
  const server = new Server()
    .register(TaskService, taskImpl as TaskImpl)
    .register(EventsService, eventsImpl as ServiceImpl<typeof EventsService>);
  await server.listen(sock);
  t.teardown(() => server.close());
  const client = await Client.connect(sock);
  t.teardown(() => client.close());

  const taskStub = client.service(TaskService);
  const req = task.CreateTaskRequest.create({
    id: "c1",
    bundle: "/b",
    rootfs: [{ type: "bind", source: "/s" }],
  });
  const res = await taskStub.create(req);
  t.same(res, { pid: 4242 });
  t.equal(seen[0]?.id, "c1");
  t.same(seen[0]?.rootfs, [{ type: "bind", source: "/s", target: "", options: [] }]);

  const topics: string[] = [];
  for await (const env of client
    .service(EventsService)
    .subscribe({ filters: ["/tasks/exit", "/tasks/oom"] })) {
    topics.push(env.topic);
    t.same(env.timestamp, { seconds: 1, nanos: 2 });
  }
  t.same(topics, ["/tasks/exit", "/tasks/oom"]);

  // Unimplemented methods answer 12, as a shim must for what it cannot do.
  await t.rejects(taskStub.pause({ id: "c1" }), { code: 12 });
});
