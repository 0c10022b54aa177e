// peerCredentials: SO_PEERCRED on unix sockets, from this process and from another one.
import { closeSync, mkdtempSync, openSync, rmSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import t from "tap";
import { peerCredentials, socketFd } from "./peer-credentials.js";

async function listen(t: { teardown(fn: () => unknown): void }): Promise<{ server: Server; path: string }> {
  const dir = mkdtempSync(join(tmpdir(), "tsrunc-native-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "s");
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(path, resolve));
  t.teardown(() => server.close());
  return { server, path };
}

t.test("both ends of a connection within this process see us", async (t) => {
  const { server, path } = await listen(t);
  const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
  const client = createConnection(path);
  await new Promise((resolve) => client.once("connect", resolve));
  const serverSide = await accepted;
  const us = { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() };
  t.same(peerCredentials(serverSide), us, "server side");
  t.same(peerCredentials(client), us, "client side");
  t.same(peerCredentials(socketFd(serverSide)), us, "by fd");
  client.destroy();
  serverSide.destroy();
});

t.test("a peer in another process is that process", async (t) => {
  const { server, path } = await listen(t);
  const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
  const peer = execa("python3", [
    "-c",
    "import socket, sys\nc = socket.socket(socket.AF_UNIX)\nc.connect(sys.argv[1])\nc.recv(1)",
    path,
  ]);
  const socket = await accepted;
  t.same(peerCredentials(socket), { pid: peer.pid, uid: process.getuid!(), gid: process.getgid!() });
  socket.end();
  await peer;
});

t.test("errors: not a socket, closed socket", async (t) => {
  const fd = openSync("/dev/null", "r");
  t.teardown(() => closeSync(fd));
  t.throws(() => peerCredentials(fd), { code: "ENOTSOCK" });
  t.throws(() => peerCredentials(-1), { code: "EBADF" });
  const { path } = await listen(t);
  const client = createConnection(path);
  await new Promise((resolve) => client.once("connect", resolve));
  client.destroy();
  t.throws(() => peerCredentials(client), { code: "EBADF" });
});
