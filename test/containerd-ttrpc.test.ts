// Our ttrpc client against real peers that no one here wrote: containerd 1.6's ttrpc socket (the
// Events service shims forward to) and the Go shim's Task service. Payloads come from
// @tsrunc/protocol and, for an independent cross-check, from protobufjs reflection built here
// from containerd's .proto field numbers.

import * as fs from "node:fs";
import {
  EventsTtrpcService,
  events,
  packAny,
  TaskService,
  Topics,
  tasktypes,
  timestampFromDate,
  timestampNow,
  ttrpcevents,
} from "@tsrunc/protocol";
import { Client, Code, TtrpcError } from "@tsrunc/ttrpc";
import protobuf from "protobufjs";
import t, { type Test } from "tap";
import { type Containerd, startContainerd, type TestLike } from "./helpers/containerd.js";
import { LineReader } from "./helpers/lines.js";

const EVENTS = "containerd.services.events.ttrpc.v1.Events";

// containerd 1.6 api/services/ttrpc/events/v1/events.proto and api/events/task.proto, by hand.
const reflected = protobuf.Root.fromJSON({
  nested: {
    google: {
      nested: {
        protobuf: {
          nested: {
            Timestamp: { fields: { seconds: { type: "int64", id: 1 }, nanos: { type: "int32", id: 2 } } },
            Any: { fields: { type_url: { type: "string", id: 1 }, value: { type: "bytes", id: 2 } } },
          },
        },
      },
    },
    ev: {
      nested: {
        TaskExit: {
          fields: {
            container_id: { type: "string", id: 1 },
            id: { type: "string", id: 2 },
            pid: { type: "uint32", id: 3 },
            exit_status: { type: "uint32", id: 4 },
            exited_at: { type: "google.protobuf.Timestamp", id: 5 },
          },
        },
        Envelope: {
          fields: {
            timestamp: { type: "google.protobuf.Timestamp", id: 1 },
            namespace: { type: "string", id: 2 },
            topic: { type: "string", id: 3 },
            event: { type: "google.protobuf.Any", id: 4 },
          },
        },
        ForwardRequest: { fields: { envelope: { type: "Envelope", id: 1 } } },
      },
    },
  },
});
const RForwardRequest = reflected.lookupType("ev.ForwardRequest");
const RTaskExit = reflected.lookupType("ev.TaskExit");

/** Asserts that `p` rejects with a TtrpcError of `code`; returns the error. */
type Tap = Pick<Test, "ok" | "fail">;

async function rejectsWith(t: Tap, p: Promise<unknown>, code: Code, message: string): Promise<unknown> {
  try {
    await p;
    t.fail(`${message}: resolved, expected ${Code[code]}`);
    return undefined;
  } catch (e) {
    t.ok(e instanceof TtrpcError && e.code === code, `${message}: ${Code[code]} (${code})`, {
      got: e instanceof TtrpcError ? `${Code[e.code]}: ${e.message}` : String(e),
    });
    return e;
  }
}

async function connect(t: TestLike, socket: string): Promise<Client> {
  const client = await Client.connect(socket, { timeoutMs: 5000 });
  t.teardown(() => client.close());
  return client;
}

/** `ctr events` in the background, known to be subscribed: a probe event has come through. */
async function subscribedEvents(
  cd: Containerd,
  client: Client,
): Promise<{ out: LineReader; err: LineReader }> {
  const sub = cd.ctrSpawn(["events"]);
  const out = new LineReader(sub.stdout);
  const err = new LineReader(sub.stderr);
  const forward = client.service(EventsTtrpcService).forward;
  for (let i = 0; ; i++) {
    await forward({
      envelope: {
        timestamp: timestampNow(),
        namespace: cd.namespace,
        topic: "/tsrunc/probe",
        event: packAny(events.ContainerDelete, { id: `probe-${i}` }),
      },
    });
    try {
      await out.waitFor("/tsrunc/probe", 100);
      return { out, err };
    } catch (e) {
      if (i > 100) throw e;
    }
  }
}

/** The JSON ctr events prints for an event: "<time> <namespace> <topic> <json>". */
function eventJson(line: string, namespace: string, topic: string): Record<string, unknown> {
  const marker = ` ${namespace} ${topic} `;
  const at = line.indexOf(marker);
  if (at < 0) throw new Error(`not an event line for ${namespace} ${topic}: ${line}`);
  return JSON.parse(line.slice(at + marker.length));
}

t.test("Events/Forward on containerd's ttrpc socket", async (t) => {
  const cd = await startContainerd(t);
  const client = await connect(t, cd.ttrpcAddress);
  const { out, err } = await subscribedEvents(cd, client);
  const forward = client.service(EventsTtrpcService).forward;

  await t.test("a TaskExit encoded by @tsrunc/protocol, through the typed stub", async (t) => {
    const sent = new Date("2001-02-03T04:05:06.789Z");
    const exitedAt = new Date("2001-02-03T04:05:06.5Z");
    const res = await forward({
      envelope: {
        timestamp: timestampFromDate(sent),
        namespace: cd.namespace,
        topic: Topics.taskExit,
        event: packAny(events.TaskExit, {
          containerId: "c-typed",
          id: "c-typed",
          pid: 4242,
          exitStatus: 7,
          exitedAt: timestampFromDate(exitedAt),
        }),
      },
    });
    t.same(res, {}, "Forward answers google.protobuf.Empty");
    const line = await out.waitFor((l) => l.includes("c-typed"));
    t.ok(line.startsWith("2001-02-03 04:05:06.789 +0000 UTC "), `envelope timestamp arrives: ${line}`);
    t.same(eventJson(line, cd.namespace, "/tasks/exit"), {
      container_id: "c-typed",
      id: "c-typed",
      pid: 4242,
      exit_status: 7,
      exited_at: "2001-02-03T04:05:06.5Z",
    });
    t.match(
      cd.logTail(400),
      /msg="event forwarded" ns=\S+ topic=\/tasks\/exit type=containerd\.events\.TaskExit/,
    );
  });

  await t.test("a ForwardRequest built by protobufjs reflection, through client.call", async (t) => {
    const bytes = RForwardRequest.encode(
      RForwardRequest.create({
        envelope: {
          timestamp: { seconds: 1_700_000_000, nanos: 5 },
          namespace: cd.namespace,
          topic: "/tasks/exit",
          event: {
            type_url: "containerd.events.TaskExit",
            value: RTaskExit.encode(
              RTaskExit.create({ container_id: "c-reflected", id: "x1", pid: 1, exit_status: 255 }),
            ).finish(),
          },
        },
      }),
    ).finish();
    const res = await client.call(EVENTS, "Forward", bytes);
    t.equal(res.length, 0, "an empty Empty");
    const line = await out.waitFor((l) => l.includes("c-reflected"));
    t.ok(line.startsWith("2023-11-14 22:13:20.000000005 +0000 UTC "), line);
    t.match(eventJson(line, cd.namespace, "/tasks/exit"), {
      container_id: "c-reflected",
      id: "x1",
      exit_status: 255,
    });
  });

  await t.test("@tsrunc/protocol's bytes decode the same with protobufjs reflection", async (t) => {
    const env = {
      timestamp: { seconds: 12, nanos: 34 },
      namespace: "ns",
      topic: "/tasks/exit",
      event: packAny(events.TaskExit, { containerId: "a", id: "b", pid: 3, exitStatus: 4 }),
    };
    const decoded = RForwardRequest.toObject(
      RForwardRequest.decode(ttrpcevents.ForwardRequest.encode({ envelope: env })),
      {
        longs: Number,
        defaults: false,
      },
    );
    t.match(decoded, {
      envelope: { timestamp: { seconds: 12, nanos: 34 }, namespace: "ns", topic: "/tasks/exit" },
    });
    t.equal(decoded.envelope.event.type_url, "containerd.events.TaskExit", "bare proto name as type URL");
    t.match(RTaskExit.toObject(RTaskExit.decode(decoded.envelope.event.value)), {
      container_id: "a",
      id: "b",
      pid: 3,
      exit_status: 4,
    });
  });

  await t.test(
    "type URL: containerd.events.TaskExit is what ctr can decode, a type.googleapis.com/ prefix is not",
    async (t) => {
      const exit = events.TaskExit.encode({ containerId: "c-prefixed", id: "c-prefixed", exitStatus: 1 });
      await forward({
        envelope: {
          timestamp: timestampNow(),
          namespace: cd.namespace,
          topic: Topics.taskExit,
          event: { typeUrl: "type.googleapis.com/containerd.events.TaskExit", value: exit },
        },
      });
      // containerd itself accepts any Any; the subscriber (ctr, typeurl v1) cannot unpack it.
      const warning = await err.waitFor(/cannot unmarshal an event from Any/);
      t.match(warning, /type\.googleapis\.com\/containerd\.events\.TaskExit/);
      t.notOk(
        out.lines.some((l) => l.includes("c-prefixed")),
        "no event line for the prefixed type URL",
      );
    },
  );

  await t.test("containerd's validation comes back as InvalidArgument (3)", async (t) => {
    const good = {
      timestamp: timestampNow(),
      namespace: cd.namespace,
      topic: Topics.taskExit,
      event: packAny(events.TaskExit, { containerId: "v" }),
    };
    await rejectsWith(
      t,
      forward({ envelope: { ...good, topic: "tasks/exit" } }),
      Code.InvalidArgument,
      "topic without /",
    );
    await rejectsWith(
      t,
      forward({ envelope: { ...good, namespace: "not valid!" } }),
      Code.InvalidArgument,
      "bad namespace",
    );
    await rejectsWith(
      t,
      forward({ envelope: { ...good, namespace: "" } }),
      Code.InvalidArgument,
      "no namespace",
    );
    // Go's zero time.Time is what an unset timestamp decodes to; containerd refuses it.
    await rejectsWith(
      t,
      forward({ envelope: ttrpcevents.Envelope.create({ ...good, timestamp: undefined }) }),
      Code.InvalidArgument,
      "zero timestamp",
    );
    t.same(await forward({ envelope: good }), {}, "the same envelope, valid, passes");
  });

  await t.test(
    "unknown service and unknown method: Unimplemented (12); the connection stays usable",
    async (t) => {
      await rejectsWith(
        t,
        client.call(EVENTS, "Nope", new Uint8Array()),
        Code.Unimplemented,
        "unknown method",
      );
      await rejectsWith(
        t,
        client.call("containerd.services.nope.v1.Nope", "Forward", new Uint8Array()),
        Code.Unimplemented,
        "unknown service",
      );
      await rejectsWith(t, client.call("", "", new Uint8Array()), Code.Unimplemented, "empty names");
      t.ok(client.connected);
      t.same(
        await forward({
          envelope: {
            timestamp: timestampNow(),
            namespace: cd.namespace,
            topic: Topics.taskExit,
            event: packAny(events.TaskExit, { containerId: "after-errors" }),
          },
        }),
        {},
      );
      await out.waitFor("after-errors");
    },
  );

  await t.test("100 concurrent Forwards on one connection all arrive", async (t) => {
    const n = 100;
    const from = out.lines.length;
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        forward({
          envelope: {
            timestamp: timestampNow(),
            namespace: cd.namespace,
            topic: Topics.taskExit,
            event: packAny(events.TaskExit, { containerId: `burst-${i}`, id: `burst-${i}`, pid: i + 1 }),
          },
        }),
      ),
    );
    await out.waitFor(
      () => out.lines.slice(from).filter((l) => l.includes('"burst-')).length === n,
      10000,
      from,
    );
    const ids = new Set(out.lines.slice(from).map((l) => /"container_id":"(burst-\d+)"/.exec(l)?.[1]));
    t.equal([...ids].filter(Boolean).length, n, "every event once");
  });
});

t.test(
  "the Go shim's Task service: State, a Wait that outlives its deadline, Wait, Unimplemented",
  async (t) => {
    const cd = await startContainerd(t);
    const rootfs = cd.rootfs();
    const run = await cd.ctr([
      "run",
      "-d",
      "--runtime",
      "io.containerd.runc.v2",
      "--rootfs",
      rootfs,
      "w1",
      "/bin/sleep",
      "1000",
    ]);
    t.equal(run.exitCode, 0, `ctr run -d ${run.stderr}`);
    const socket = cd.shimSocket("w1");
    if (!socket) throw new Error("no shim address");
    t.ok(fs.statSync(socket).isSocket(), `shim socket from <bundle>/address: ${socket}`);
    const client = await connect(t, socket);
    const task = client.service(TaskService);

    const state = await task.state({ id: "w1", execId: "" });
    t.equal(state.status, tasktypes.Status.RUNNING, "State: RUNNING");
    t.ok(state.pid > 0, "init pid");
    t.equal(state.bundle, cd.bundleDir("w1"), "State: bundle");

    // The Go shim's Wait ignores the deadline and answers only when the process exits: our client
    // must give up on its own, and later drop the late response.
    const t0 = Date.now();
    await rejectsWith(
      t,
      task.wait({ id: "w1", execId: "" }, { timeoutMs: 300 }),
      Code.DeadlineExceeded,
      "Wait with a 300 ms deadline",
    );
    const waited = Date.now() - t0;
    t.ok(waited >= 290 && waited < 3000, `gave up after ${waited} ms`);
    t.equal(
      (await task.state({ id: "w1", execId: "" })).status,
      tasktypes.Status.RUNNING,
      "connection still usable",
    );

    const wait = task.wait({ id: "w1", execId: "" });
    t.equal((await cd.ctr(["task", "kill", "-s", "KILL", "w1"])).exitCode, 0, "ctr task kill -s KILL");
    const exit = await wait;
    t.equal(exit.exitStatus, 137, "128 + SIGKILL");
    t.ok(Math.abs(exit.exitedAt.seconds * 1000 - Date.now()) < 60_000, "exited_at is now");
    t.equal((await task.state({ id: "w1", execId: "" })).status, tasktypes.Status.STOPPED, "State: STOPPED");
    t.equal(client.pending, 0, "the abandoned Wait's late answer was dropped, nothing pending");

    await rejectsWith(
      t,
      task.state({ id: "nope", execId: "" }),
      Code.NotFound,
      "unknown container: NotFound",
    );
    await rejectsWith(
      t,
      client.call(TaskService.name, "Nope", new Uint8Array()),
      Code.Unimplemented,
      "unknown Task method",
    );
    // Left running on purpose (a stopped task, its shim): the harness's stop() must clean it up.
  },
);
