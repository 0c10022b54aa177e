import { MAX_SOCKET_PATH_BYTES, socketPathOf } from "@tsrunc/ttrpc";
import t from "tap";
import { socketAddress, socketPath } from "./socket-path.js";

t.test("socket path is stable, distinct per input, and fits sun_path", async (t) => {
  const a = socketPath("/run/containerd/containerd.sock", "default", "c1", "/run/tsrunc/s");
  t.equal(a, socketPath("/run/containerd/containerd.sock", "default", "c1", "/run/tsrunc/s"));
  t.not(a, socketPath("/run/containerd/containerd.sock", "default", "c2", "/run/tsrunc/s"));
  t.not(a, socketPath("/run/containerd/containerd.sock", "other", "c1", "/run/tsrunc/s"));
  t.ok(Buffer.byteLength(a) <= MAX_SOCKET_PATH_BYTES);
  const long = socketPath("x".repeat(200), "ns", "id", `/tmp/${"d".repeat(50)}`);
  t.ok(Buffer.byteLength(long) <= MAX_SOCKET_PATH_BYTES);
  t.throws(() => socketPath("a", "b", "c", `/${"d".repeat(100)}`));
});

t.test("address round trip", async (t) => {
  t.equal(socketPathOf(socketAddress("/a/b")), "/a/b", "ttrpc reads back what we print");
});
