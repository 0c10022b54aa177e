// receiveFd: the console socket end of `runc --console-socket`, with a python3 sender.
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import t from "tap";
import { closeFd, receiveFd } from "./console-socket.js";

interface Teardown {
  teardown(fn: () => unknown): void;
}

function tempDir(t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), "tsrunc-native-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// Connects to argv[1] and sends, as runc does, a name with fds attached: one fd opened for
// writing on each further argument.
const SEND_FDS = `
import os, socket, sys
fds = [os.open(p, os.O_WRONLY | os.O_CREAT, 0o600) for p in sys.argv[2:]]
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(sys.argv[1])
socket.send_fds(c, [b"/dev/ptmx"], fds)
`;

function openFdCount(): number {
  return readdirSync("/proc/self/fd").length;
}

t.test("receives the fd that the peer sends; the socket is 0600 and removed after", async (t) => {
  const dir = tempDir(t);
  const socket = join(dir, "console.sock");
  const target = join(dir, "target");
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 5);
  t.teardown(() => clearInterval(ticker));

  const receiving = receiveFd(socket, { timeoutMs: 10_000 });
  const st = statSync(socket);
  t.ok(st.isSocket(), "listening at the path at once");
  t.equal(st.mode & 0o777, 0o600, "mode 0600");
  await new Promise((r) => setTimeout(r, 100));
  await execa("python3", ["-c", SEND_FDS, socket, target]);
  const fd = await receiving;
  t.ok(ticks >= 5, "the event loop ran while we waited");
  t.notOk(existsSync(socket), "socket file removed");

  const flags = /flags:\s+(\d+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, "utf8"))?.[1];
  t.ok(flags && (Number.parseInt(flags, 8) & 0o2000000) !== 0, "received close-on-exec");
  writeSync(fd, "hello through the fd");
  closeFd(fd);
  t.equal(readFileSync(target, "utf8"), "hello through the fd");
});

t.test("several fds in one message: the first is kept, the others closed", async (t) => {
  const dir = tempDir(t);
  const socket = join(dir, "s");
  const before = openFdCount();
  const receiving = receiveFd(socket);
  await execa("python3", ["-c", SEND_FDS, socket, join(dir, "a"), join(dir, "b"), join(dir, "c")]);
  const fd = await receiving;
  writeSync(fd, "first");
  closeFd(fd);
  t.equal(readFileSync(join(dir, "a"), "utf8"), "first");
  t.equal(openFdCount(), before, "no fd leaked");
});

t.test("times out with ETIMEDOUT and removes the socket", async (t) => {
  const socket = join(tempDir(t), "s");
  const before = openFdCount();
  await t.rejects(receiveFd(socket, { timeoutMs: 50 }), { code: "ETIMEDOUT" });
  t.notOk(existsSync(socket));
  await new Promise((r) => setImmediate(r));
  t.equal(openFdCount(), before, "no fd leaked");
});

t.test("an AbortSignal cancels the wait", async (t) => {
  const socket = join(tempDir(t), "s");
  const controller = new AbortController();
  const receiving = receiveFd(socket, { signal: controller.signal });
  t.ok(existsSync(socket));
  const reason = new Error("runc create failed");
  controller.abort(reason);
  await t.rejects(receiving, reason, "rejects with the signal's reason");
  t.notOk(existsSync(socket), "socket removed");
  await t.rejects(receiveFd(socket, { signal: controller.signal }), reason, "an aborted signal: at once");
  t.notOk(existsSync(socket), "and no socket made");
});

t.test("a peer that sends no fd is an error", async (t) => {
  const dir = tempDir(t);
  const closing = receiveFd(join(dir, "a"));
  createConnection(join(dir, "a")).end();
  await t.rejects(closing, { code: "ECONNRESET" }, "closed without an fd");
  const chatty = receiveFd(join(dir, "b"));
  createConnection(join(dir, "b")).end("no fd here");
  await t.rejects(chatty, { code: "EPROTO" }, "data without an fd");
  t.same(readdirSync(dir), [], "sockets removed");
});

t.test("bad paths fail before listening", async (t) => {
  const dir = tempDir(t);
  const taken = join(dir, "taken");
  writeFileSync(taken, "keep me");
  await t.rejects(receiveFd(taken), { code: "EADDRINUSE" });
  t.equal(readFileSync(taken, "utf8"), "keep me", "an existing file is left alone");
  await t.rejects(receiveFd(join(dir, "x".repeat(120))), { code: "ENAMETOOLONG" });
  await t.rejects(receiveFd(join(dir, "missing", "s")), { code: "ENOENT" });
});

t.test("two waits at once", async (t) => {
  const dir = tempDir(t);
  const [a, b] = [join(dir, "a.sock"), join(dir, "b.sock")];
  const receiving = [receiveFd(a), receiveFd(b)];
  await Promise.all([
    execa("python3", ["-c", SEND_FDS, b, join(dir, "b")]),
    execa("python3", ["-c", SEND_FDS, a, join(dir, "a")]),
  ]);
  const fds = await Promise.all(receiving);
  for (const [i, fd] of fds.entries()) {
    writeSync(fd, `to ${i}`);
    closeFd(fd);
  }
  t.equal(readFileSync(join(dir, "a"), "utf8"), "to 0");
  t.equal(readFileSync(join(dir, "b"), "utf8"), "to 1");
});
