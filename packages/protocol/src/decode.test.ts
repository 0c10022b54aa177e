// Decoding what other peers may send: fields we do not know (a newer containerd), repeated
// fields in either packed or unpacked form, and malformed bytes, which must throw rather than
// yield a half-read message.

import t from "tap";
import { cgroup1, protobuf, task } from "./shim.js";
import { fromHex, hex } from "./test-support.js";

const KILL = "0a026331 12026531 1809 2001"; // {id "c1", execId "e1", signal 9, all true}
const killed = { id: "c1", execId: "e1", signal: 9, all: true };

// Unknown fields, one of each wire type (hand-encoded):
const UNKNOWN_VARINT = "78 9601"; // field 15, varint 150
const UNKNOWN_FIXED64 = "8101 0102030405060708"; // field 16 (tag 129 = 81 01), 8 bytes
const UNKNOWN_BYTES = "8a01 03 616263"; // field 17 (tag 138), length 3
const UNKNOWN_FIXED32 = "9501 01020304"; // field 18 (tag 149), 4 bytes
const UNKNOWN_GROUP = "9b01 0801 9c01"; // field 19 start group, {1: 1}, end group

t.test("unknown fields of every wire type are skipped", async (t) => {
  const all = [UNKNOWN_VARINT, UNKNOWN_FIXED64, UNKNOWN_BYTES, UNKNOWN_FIXED32, UNKNOWN_GROUP].join("");
  t.same(task.KillRequest.decode(fromHex(KILL + all)), killed, "after the known fields");
  t.same(task.KillRequest.decode(fromHex(all + KILL)), killed, "before them");
  t.same(
    task.KillRequest.decode(
      fromHex(`0a026331 ${UNKNOWN_GROUP} 12026531 ${UNKNOWN_BYTES} 1809 ${UNKNOWN_FIXED64} 2001`),
    ),
    killed,
    "between them",
  );
});

t.test("unknown fields inside a nested message are skipped too", async (t) => {
  // CreateTaskRequest{id "c1", rootfs [Mount{type "bind", <field 9 varint 1>, source "/s"}]}
  const req = task.CreateTaskRequest.decode(fromHex("0a026331 1a0c 0a0462696e64 4801 12022f73"));
  t.equal(req.id, "c1");
  t.same(req.rootfs, [{ type: "bind", source: "/s", target: "", options: [] }]);
});

t.test("a known field number with an unexpected wire type is skipped like an unknown field", async (t) => {
  // field 3 (signal) sent length-delimited: not a uint32, so it is ignored
  t.same(task.KillRequest.decode(fromHex("0a026331 1a0100")), {
    id: "c1",
    execId: "",
    signal: 0,
    all: false,
  });
});

t.test("repeated scalars are read packed or unpacked", async (t) => {
  // CPUUsage.per_cpu (field 4): packed 22 03 64 c801, unpacked 20 64 20 c801, or a mix
  t.same(cgroup1.CPUUsage.decode(fromHex("2203 64c801")).perCpu, [100n, 200n]);
  t.same(cgroup1.CPUUsage.decode(fromHex("2064 20c801")).perCpu, [100n, 200n]);
  t.same(cgroup1.CPUUsage.decode(fromHex("2064 2202c801 2001")).perCpu, [100n, 200n, 1n]);
  // and we write them packed, as proto3 (and Go) do
  t.equal(hex(cgroup1.CPUUsage.encode({ perCpu: [100n, 200n] })), "220364c801");
});

t.test("the last occurrence of a scalar field wins", async (t) => {
  t.equal(task.KillRequest.decode(fromHex("1801 1802")).signal, 2);
});

t.test("no bytes decode to the default message", async (t) => {
  t.same(task.KillRequest.decode(new Uint8Array(0)), { id: "", execId: "", signal: 0, all: false });
  t.same(protobuf.Any.decode(new Uint8Array(0)), { typeUrl: "", value: new Uint8Array(0) });
});

t.test("malformed input throws", async (t) => {
  const bad: [string, string][] = [
    ["0a0563", "string longer than the buffer"],
    ["18", "varint missing"],
    ["18ff", "varint cut short"],
    ["0001", "field number 0"],
    ["0f", "wire type 7"],
    ["0e", "wire type 6"],
    ["0c", "end group without start"],
    ["9b010801", "group never ended"],
    ["1a05 0a0462696e64", "nested message overruns its parent"],
    ["52 03 0a0561", "field inside Any overruns the Any"],
    ["8101 0102", "fixed64 cut short"],
  ];
  for (const [h, why] of bad) {
    t.throws(() => task.CreateTaskRequest.decode(fromHex(h)), why);
  }
  // a uint64 varint longer than 10 bytes
  t.throws(() => cgroup1.PidsStat.decode(fromHex(`08${"ff".repeat(10)}01`)), "11-byte varint");
});

t.test("a nested message's length is checked against its parent's, not the buffer's", async (t) => {
  // ForwardRequest{envelope (len 2) {namespace "ab"}} where the envelope claims 2 bytes but its
  // namespace field claims 2 more: the parent length stops it even though the buffer goes on.
  t.throws(() => task.CreateTaskRequest.decode(fromHex("1a02 0a02 6162")));
});

t.test("bytes fields are copies, not views of the input buffer", async (t) => {
  const buf = fromHex("0a0178 1203 010203"); // Any{type_url "x", value 01 02 03}
  const any = protobuf.Any.decode(buf);
  buf.fill(0);
  t.same([...any.value], [1, 2, 3]);
});

t.test('a map key "__proto__" is an ordinary entry', async (t) => {
  const bytes = task.UpdateTaskRequest.encode({
    id: "c",
    annotations: JSON.parse('{"__proto__":"x","a":"b"}'),
  });
  const back = task.UpdateTaskRequest.decode(bytes);
  t.equal(Object.getPrototypeOf(back.annotations), Object.prototype);
  t.same(Object.entries(back.annotations), [
    ["__proto__", "x"],
    ["a", "b"],
  ]);
});

t.test("encode takes partial messages; create fills every field", async (t) => {
  t.equal(hex(task.KillRequest.encode({ id: "c1" })), "0a026331");
  t.same(task.StateRequest.create(), { id: "", execId: "" });
  const created = task.CreateTaskRequest.create({ id: "c1", rootfs: [{ type: "bind" }] });
  t.same(created.rootfs, [{ type: "bind", source: "", target: "", options: [] }]);
  t.equal(created.options, undefined);
});
