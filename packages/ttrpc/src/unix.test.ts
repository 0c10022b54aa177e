import { mkdirSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import t from "tap";
import { Code, isCode } from "./status.js";
import { tempDir } from "./test-support.js";
import { connectUnix, listenUnix, socketPathOf } from "./unix.js";

function closeServer(s: Server): Promise<void> {
  return new Promise((r) => s.close(() => r()));
}

t.test("socketPathOf accepts containerd's unix:// addresses", async (t) => {
  t.equal(socketPathOf("unix:///run/a.sock"), "/run/a.sock");
  t.equal(socketPathOf("/run/a.sock"), "/run/a.sock");
});

t.test("listen creates a 0700 directory and a 0600 socket", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "sub", "deeper", "s.sock");
  const server = await listenUnix(path);
  t.teardown(() => closeServer(server));
  t.equal(statSync(join(dir, "sub")).mode & 0o777, 0o700);
  t.equal(statSync(join(dir, "sub", "deeper")).mode & 0o777, 0o700);
  const st = statSync(path);
  t.ok(st.isSocket());
  t.equal(st.mode & 0o777, 0o600);
  const sock = await connectUnix(`unix://${path}`);
  sock.destroy();
});

t.test("an existing directory is used as it is", async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, "d"), { mode: 0o711 });
  const server = await listenUnix(join(dir, "d", "s.sock"));
  t.teardown(() => closeServer(server));
  t.equal(statSync(join(dir, "d")).mode & 0o777, 0o711);
});

t.test("a stale socket (nothing answers) is replaced", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "s.sock");
  // Leave a socket file with no listener: bind, then drop the handle without unlinking.
  const { spawnSync } = await import("node:child_process");
  const r = spawnSync(process.execPath, [
    "-e",
    `require("net").createServer().listen(${JSON.stringify(path)}, () => process.exit(0))`,
  ]);
  t.equal(r.status, 0);
  t.ok(statSync(path).isSocket(), "stale socket file left behind");
  await t.rejects(connectUnix(path), { code: Code.Unavailable });
  const server = await listenUnix(path);
  t.teardown(() => closeServer(server));
  const sock = await connectUnix(path);
  sock.destroy();
});

t.test("a live socket is refused with AlreadyExists", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "s.sock");
  const live = createServer((s) => s.destroy());
  await new Promise<void>((r) => live.listen(path, r));
  t.teardown(() => closeServer(live));
  const err = await listenUnix(path).catch((e: unknown) => e);
  t.ok(isCode(err, Code.AlreadyExists), String(err));
  t.ok(statSync(path).isSocket(), "left alone");
});

t.test("a non-socket file is never removed", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "file");
  writeFileSync(path, "precious");
  const err = await listenUnix(path).catch((e: unknown) => e);
  t.ok(isCode(err, Code.AlreadyExists), String(err));
  t.ok(statSync(path).isFile());
});

t.test("abstract and over-long paths are refused", async (t) => {
  for (const p of ["\0abstract", "@abstract", "unix://@abstract", ""]) {
    await t.rejects(listenUnix(p), { code: Code.InvalidArgument }, JSON.stringify(p));
    await t.rejects(connectUnix(p), { code: Code.InvalidArgument }, JSON.stringify(p));
  }
  const long = `/tmp/${"x".repeat(110)}`;
  await t.rejects(listenUnix(long), { code: Code.InvalidArgument });
  await t.rejects(connectUnix(long), { code: Code.InvalidArgument });
});

t.test("connecting to nothing is Unavailable", async (t) => {
  const dir = tempDir(t);
  const err = await connectUnix(join(dir, "none.sock")).catch((e: unknown) => e);
  t.ok(isCode(err, Code.Unavailable), String(err));
});
