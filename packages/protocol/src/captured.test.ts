// Bytes captured from a real containerd 1.6.20 (Debian bookworm's package), which ran a
// throwaway recording shim under `ctr run --rm --null-io --no-pivot --runtime
// io.containerd.runc.capture --rootfs ROOTFS c1 /bin/true`. Our decoder must read them and our
// encoder must write the same bytes back. (In the same run containerd accepted and decoded the
// events the shim forwarded with this package's encoder: `ctr events` printed /tasks/create,
// /tasks/start, /tasks/exit and /tasks/delete with their fields.)

import t from "tap";
import { protobuf, runcoptions, task, unpackAnyAs } from "./shim.js";
import { fromHex, hex } from "./test-support.js";

const a = (s: string) => Buffer.from(s, "ascii").toString("hex");
const BUNDLE = "/tmp/capture/state/io.containerd.runtime.v2.task/capns/c1";

// What `containerd-shim-… start` read on stdin: the task's runtime options as an Any.
const START_STDIN = "0a1a636f6e7461696e6572642e72756e632e76312e4f7074696f6e7312020801";

// Task/Create as containerd sent it: id, bundle, options (fields 1, 2, 10).
const CREATE_REQ = [
  "0a026331", // 1 id "c1"
  `1239${a(BUNDLE)}`, // 2 bundle (57 bytes)
  "5220", // 10 options: an Any of 32 bytes
  `0a1a${a("containerd.runc.v1.Options")}12020801`,
].join("");

t.test("the runtime options containerd writes to `start`'s stdin", async (t) => {
  const any = protobuf.Any.decode(fromHex(START_STDIN));
  t.equal(any.typeUrl, "containerd.runc.v1.Options");
  t.same(unpackAnyAs(any, runcoptions.Options), runcoptions.Options.create({ noPivotRoot: true }));
  t.equal(hex(protobuf.Any.encode(any)), START_STDIN);
});

t.test("Task/Create as containerd sends it", async (t) => {
  const req = task.CreateTaskRequest.decode(fromHex(CREATE_REQ));
  t.equal(req.id, "c1");
  t.equal(req.bundle, BUNDLE);
  t.same(req.rootfs, []);
  t.equal(req.terminal, false);
  t.equal(req.stdin, "");
  t.equal(req.options?.typeUrl, "containerd.runc.v1.Options");
  t.equal(req.options && unpackAnyAs(req.options, runcoptions.Options).noPivotRoot, true);
  t.equal(hex(task.CreateTaskRequest.encode(req)), CREATE_REQ, "re-encodes to the same bytes");
});

t.test("the id-only requests (State, Wait, Delete, Shutdown, Connect)", async (t) => {
  for (const type of [
    task.StateRequest,
    task.WaitRequest,
    task.DeleteRequest,
    task.ShutdownRequest,
    task.ConnectRequest,
  ]) {
    const m = type.decode(fromHex("0a026331")) as { id: string };
    t.equal(m.id, "c1", type.typeName);
    t.equal(hex(type.encode(m as never)), "0a026331");
  }
});
