// Golden byte vectors, derived by hand from the protobuf encoding rules (not by any encoder):
//   tag = field_number << 3 | wire_type   (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32)
//   varint = 7 bits a byte, least significant group first, high bit set on all but the last;
//   negative int64 = its 64-bit two's complement as a 10-byte varint;
//   proto3: fields holding their default are not written; repeated scalars are packed;
//   fields go out in field-number order (as Go's gogo/protobuf marshalers write them).
// Each vector is checked both ways: our encoder must produce exactly these bytes, and our
// decoder must read them back into the message.

import t from "tap";
import {
  cgroup1,
  cgroup2,
  events,
  GO_ZERO_TIME,
  OciProcessType,
  packAny,
  protobuf,
  rpc,
  runcoptions,
  task,
  tasktypes,
  ttrpcevents,
} from "./shim.js";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const bytes = (h: string) => Buffer.from(h.replace(/\s+/g, ""), "hex");
/** The ASCII bytes of a string, as hex (readability aid for long type URLs). */
const a = (s: string) => Buffer.from(s, "ascii").toString("hex");

// 1700000000 = 0x6553F100 -> groups 0x00 0x62 0x4f 0x2a 0x06 -> 80 e2 cf aa 06
const V_1700000000 = "80e2cfaa06";
// 123456789 = 0x075BCD15 -> 95 9a ef 3a
const V_123456789 = "959aef3a";
// -62135596800 (Go's zero time.Time) = 0xFFFFFFF186E09000 as uint64 -> 10 bytes
const V_GO_ZERO = "8092b8c398feffffff01";
// 2^64-1 -> nine 0xff and a final 0x01
const V_U64_MAX = "ffffffffffffffffff01";

function vector<T>(
  name: string,
  type: { encode(m: T): Uint8Array; decode(b: Uint8Array): T },
  message: T,
  expectedHex: string,
) {
  t.test(name, async (t) => {
    t.equal(hex(type.encode(message)), expectedHex.replace(/\s+/g, ""), "encodes to the hand-derived bytes");
    t.same(type.decode(bytes(expectedHex)), message, "decodes back to the message");
  });
}

vector(
  "KillRequest",
  task.KillRequest,
  { id: "c1", execId: "e1", signal: 9, all: true },
  // 1:"c1"      2:"e1"      3:9   4:true
  "0a026331 12026531 1809 2001",
);

vector(
  "KillRequest with defaults leaves them off the wire",
  task.KillRequest,
  { id: "c1", execId: "", signal: 15, all: false },
  "0a026331 180f",
);

vector(
  "CreateTaskRequest with id, bundle, a Mount, terminal, stdout and runc Options",
  task.CreateTaskRequest,
  task.CreateTaskRequest.create({
    id: "c1",
    bundle: "/b",
    rootfs: [{ type: "overlay", source: "overlay", target: "", options: ["ro"] }],
    terminal: true,
    stdout: "/o",
    options: {
      typeUrl: "containerd.runc.v1.Options",
      // Options{systemd_cgroup (9) = true}: tag 9<<3|0 = 0x48, value 01
      value: bytes("4801"),
    },
  }),
  "0a026331" + // 1 id "c1"
    "12022f62" + // 2 bundle "/b"
    // 3 rootfs: one Mount of 22 bytes: 1 type "overlay", 2 source "overlay", 4 options "ro"
    "1a16 0a076f7665726c6179 12076f7665726c6179 2202726f" +
    "2001" + // 4 terminal
    "32022f6f" + // 6 stdout "/o" (tag 6<<3|2 = 0x32)
    // 10 options (tag 10<<3|2 = 0x52), an Any of 32 bytes: 1 type_url (26 bytes), 2 value (2 bytes)
    `5220 0a1a${a("containerd.runc.v1.Options")} 12024801`,
);

vector(
  "Timestamp",
  protobuf.Timestamp,
  { seconds: 1700000000, nanos: 123456789 },
  `08${V_1700000000} 10${V_123456789}`,
);

vector(
  "Timestamp at Go's zero time (negative int64)",
  protobuf.Timestamp,
  { ...GO_ZERO_TIME },
  `08${V_GO_ZERO}`,
);

vector("Empty is zero bytes", protobuf.Empty, {}, "");

vector("google.rpc.Status", rpc.Status, { code: 5, message: "nf", details: [] }, "0805 12026e66");

vector(
  "ConnectResponse",
  task.ConnectResponse,
  { shimPid: 100, taskPid: 101, version: "1" },
  "0864 1065 1a0131",
);

vector(
  "StateResponse carries the Status enum as a varint",
  task.StateResponse,
  task.StateResponse.create({ id: "c1", pid: 42, status: tasktypes.Status.RUNNING, exitedAt: GO_ZERO_TIME }),
  // 1 id, 3 pid 42, 4 status 2, 10 exited_at (tag 0x52) = Go zero time (11 bytes)
  `0a026331 182a 2002 520b08${V_GO_ZERO}`,
);

t.test("a non-nullable timestamp left out is written as Go's zero time, as Go does", async (t) => {
  // DeleteResponse{pid 5}: Go's shim always writes exited_at (a time.Time value, not a pointer).
  const expected = `08051a0b08${V_GO_ZERO}`;
  t.equal(hex(task.DeleteResponse.encode({ pid: 5 })), expected);
  t.same(task.DeleteResponse.decode(bytes(expected)), { pid: 5, exitStatus: 0, exitedAt: GO_ZERO_TIME });
  // and when the field is absent on the wire, the decoder fills in the same value
  t.same(task.DeleteResponse.decode(bytes("0805")).exitedAt, GO_ZERO_TIME);
});

vector(
  "UpdateTaskRequest with an annotations map entry",
  task.UpdateTaskRequest,
  { id: "c1", resources: undefined, annotations: { k: "v" } },
  // 3 annotations: entry message {1 key "k", 2 value "v"} of 6 bytes
  "0a026331 1a06 0a016b 120176",
);

const taskExit = {
  containerId: "c1",
  id: "c1",
  pid: 42,
  exitStatus: 137,
  exitedAt: { seconds: 1700000000, nanos: 0 },
};
// 1 "c1", 2 "c1", 3 pid 42, 4 exit_status 137 (89 01), 5 exited_at {1 seconds} (6 bytes) = 21 bytes
const TASK_EXIT_HEX = `0a026331 12026331 182a 208901 2a0608${V_1700000000}`;

vector("TaskExit", events.TaskExit, taskExit, TASK_EXIT_HEX);

// Envelope: 1 timestamp (8 bytes), 2 namespace "default", 3 topic "/tasks/exit" (11 bytes),
// 4 event = Any{1 type_url (26 bytes), 2 value (21 bytes)} = 2+26+2+21 = 51 = 0x33 bytes.
const ENVELOPE_HEX =
  `0a0608${V_1700000000}` +
  `1207${a("default")}` +
  `1a0b${a("/tasks/exit")}` +
  `2233 0a1a${a("containerd.events.TaskExit")} 1215${TASK_EXIT_HEX}`;

t.test("ForwardRequest with an Envelope carrying a packed TaskExit", async (t) => {
  const envelope = {
    timestamp: { seconds: 1700000000, nanos: 0 },
    namespace: "default",
    topic: "/tasks/exit",
    event: packAny(events.TaskExit, taskExit),
  };
  t.equal(hex(envelope.event.value), TASK_EXIT_HEX.replace(/\s+/g, ""));
  t.equal(envelope.event.typeUrl, "containerd.events.TaskExit");
  // envelope = 8 + 9 + 13 + 53 = 83 = 0x53 bytes
  const expected = `0a53${ENVELOPE_HEX}`;
  t.equal(hex(ttrpcevents.ForwardRequest.encode({ envelope })), expected.replace(/\s+/g, ""));
  const back = ttrpcevents.ForwardRequest.decode(bytes(expected));
  t.same(back.envelope?.timestamp, envelope.timestamp);
  t.equal(back.envelope?.topic, "/tasks/exit");
  t.same(events.TaskExit.decode(back.envelope?.event?.value ?? new Uint8Array()), taskExit);
});

vector(
  "cgroup v1 Metrics: uint64 counters and a packed repeated per_cpu",
  cgroup1.Metrics,
  cgroup1.Metrics.create({ cpu: { usage: { total: 300n, perCpu: [100n, 200n] } } }),
  // 3 cpu {1 usage {1 total 300 (ac 02), 4 per_cpu packed [100 (64), 200 (c8 01)] (3 bytes)}}
  "1a0a 0a08 08ac02 2203 64c801",
);

vector(
  "cgroup v2 Metrics: field numbers above 15 and uint64 max",
  cgroup2.Metrics,
  cgroup2.Metrics.create({
    pids: { current: 3n, limit: 18446744073709551615n },
    cpu: { usageUsec: 1000n },
    memory: { usage: 4096n, usageLimit: 18446744073709551615n },
  }),
  `0a0d 0803 10${V_U64_MAX}` + // 1 pids {1 current 3, 2 limit 2^64-1}
    "1203 08e807" + // 2 cpu {1 usage_usec 1000}
    // 4 memory {32 usage 4096: tag 256 = 80 02, value 80 20; 33 usage_limit: tag 264 = 88 02}
    `2210 8002 8020 8802 ${V_U64_MAX}`,
);

vector(
  "runc Options",
  runcoptions.Options,
  runcoptions.Options.create({ binaryName: "runc", root: "/run/r", systemdCgroup: true }),
  // 6 binary_name "runc", 7 root "/run/r", 9 systemd_cgroup true
  `3204${a("runc")} 3a06${a("/run/r")} 4801`,
);

t.test("a runtime-spec Process travels as Go-style JSON in an Any", async (t) => {
  const any = packAny(OciProcessType, {
    cwd: "/",
    user: { uid: 0, gid: 0 },
    args: ["sh", "-c", "a<b && c>d"],
  });
  t.equal(any.typeUrl, "types.containerd.io/opencontainers/runtime-spec/1/Process");
  // encoding/json escapes <, > and & as \u003c, \u003e, \u0026
  t.equal(
    Buffer.from(any.value).toString("utf8"),
    '{"cwd":"/","user":{"uid":0,"gid":0},"args":["sh","-c","a\\u003cb \\u0026\\u0026 c\\u003ed"]}',
  );
});
