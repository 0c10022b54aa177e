import t from "tap";
import { maxSocketPathBytes, pathFromAddress, socketAddress, socketPath } from "./socket-path.js";

t.test("socket path is stable, distinct per input, and fits sun_path", async (t) => {
  const a = socketPath("/run/containerd/containerd.sock", "default", "c1", "/run/tsrunc/s");
  t.equal(a, socketPath("/run/containerd/containerd.sock", "default", "c1", "/run/tsrunc/s"));
  t.not(a, socketPath("/run/containerd/containerd.sock", "default", "c2", "/run/tsrunc/s"));
  t.not(a, socketPath("/run/containerd/containerd.sock", "other", "c1", "/run/tsrunc/s"));
  t.ok(Buffer.byteLength(a) <= maxSocketPathBytes);
  const long = socketPath("x".repeat(200), "ns", "id", `/tmp/${"d".repeat(50)}`);
  t.ok(Buffer.byteLength(long) <= maxSocketPathBytes);
  t.throws(() => socketPath("a", "b", "c", `/${"d".repeat(100)}`));
});

t.test("address round trip", async (t) => {
  t.equal(pathFromAddress(socketAddress("/a/b")), "/a/b");
  t.equal(pathFromAddress("/a/b"), "/a/b");
});
