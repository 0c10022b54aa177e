// peerAccess: who is admitted, that the verdict is reached once per connection, and that a refused
// client gets PermissionDenied on its first call over a real socket (SO_PEERCRED from the addon).
import { mkdtempSync, rmSync } from "node:fs";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { peerCredentials } from "@tsrunc/native/peer-credentials";
import { ContainersService } from "@tsrunc/protocol/daemon";
import { Client, Code, type PeerCredentials, Server, type ServerCall } from "@tsrunc/ttrpc";
import t from "tap";
import { peerAccess, statusField } from "./peer-access.js";

const status = (uid: number, groups: number[]) =>
  `Name:\tnode\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\nGid:\t100\t100\t100\t100\nGroups:\t${groups.join(" ")} \nNSpid:\t7\n`;

function harness(gid: number | undefined, procs: Record<number, string> = {}) {
  const warnings: unknown[] = [];
  const reads: number[] = [];
  const access = peerAccess({
    gid,
    selfUid: 0,
    log: { warn: (obj: unknown) => warnings.push(obj) } as never,
    procStatus: (pid) => {
      reads.push(pid);
      return procs[pid];
    },
  });
  const run = async (peer: PeerCredentials | undefined) => {
    const handler = access.interceptor(async () => "ok");
    return handler({ service: "s", method: "m", kind: "unary", ctx: { peer } } as unknown as ServerCall);
  };
  return { access, run, warnings, reads };
}

t.test("statusField", async (t) => {
  t.same(statusField(status(5, [1, 2, 30]), "Groups"), [1, 2, 30]);
  t.same(statusField("Groups:\t\n", "Groups"), []);
  t.same(statusField(status(5, []), "Uid"), [5, 5, 5, 5]);
  t.equal(statusField("Name:\tx\n", "Groups"), undefined);
});

t.test("without --group: root only", async (t) => {
  const h = harness(undefined, { 9: status(1000, [0]) });
  t.equal(await h.run({ uid: 0, gid: 0, pid: 9 }), "ok");
  await t.rejects(h.run({ uid: 1000, gid: 0, pid: 9 }), { code: Code.PermissionDenied, message: /uid 1000/ });
  t.same(h.reads, [], "no groups read");
  t.match(h.warnings, [{ uid: 1000, pid: 9 }]);
  await t.rejects(h.run(undefined), { code: Code.PermissionDenied }, "unknown peer");
});

t.test("with --group: primary gid, supplementary groups, anything else", async (t) => {
  const h = harness(1234, {
    10: status(1000, [5, 1234]),
    11: status(1001, [5, 6]),
    12: status(4242, [1234]), // pid reused by another uid
  });
  t.equal(await h.run({ uid: 1000, gid: 1234, pid: 99 }), "ok", "primary gid");
  t.same(h.reads, [], "primary gid decides without /proc");
  t.equal(await h.run({ uid: 1000, gid: 1000, pid: 10 }), "ok", "supplementary group");
  await t.rejects(h.run({ uid: 1001, gid: 1001, pid: 11 }), {
    code: Code.PermissionDenied,
    message: /uid 1001 is neither root nor in group 1234/,
  });
  await t.rejects(h.run({ uid: 1002, gid: 1002, pid: 12 }), { message: /cannot read the groups of pid 12/ });
  await t.rejects(h.run({ uid: 1003, gid: 1003, pid: 13 }), { message: /cannot read the groups of pid 13/ });
  await t.rejects(h.run({ uid: 1004, gid: 1004, pid: 0 }), { message: /pid 0/ });
  t.equal(await h.run({ uid: 0, gid: 0, pid: 0 }), "ok", "root");
  t.equal(h.warnings.length, 4);
});

t.test("one verdict per connection, reached at accept time", async (t) => {
  const procs: Record<number, string> = { 10: status(1000, [1234]) };
  const h = harness(1234, procs);
  const peer = { uid: 1000, gid: 1000, pid: 10 };
  const accepted = peerAccess({
    gid: 1234,
    selfUid: 0,
    log: { warn: () => {} } as never,
    credentials: () => peer,
    procStatus: (pid) => procs[pid],
  });
  t.equal(accepted.peerCredentials({} as Socket), peer);
  delete procs[10]; // the peer's pid is gone (or reused) after accept: the verdict stands
  const handler = accepted.interceptor(async () => "ok");
  const call = { ctx: { peer } } as unknown as ServerCall;
  t.equal(await handler(call), "ok");
  t.equal(await handler(call), "ok");
  const refused = { uid: 1001, gid: 1001, pid: 11 };
  await t.rejects(h.run(refused));
  await t.rejects(h.run(refused));
  t.same(h.reads, [11], "/proc read once for two calls");
  t.equal(h.warnings.length, 1, "logged once");
});

t.test("over a unix socket: admitted as root, refused with code 7 otherwise", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tsruncd-peer-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const serveAs = async (name: string, pretend: ((s: Socket) => PeerCredentials) | undefined) => {
    const access = peerAccess({
      gid: 1234,
      log: { warn: () => {} } as never,
      procStatus: () => undefined,
      ...(pretend ? { credentials: pretend } : {}),
    });
    const server = new Server({
      peerCredentials: access.peerCredentials,
      interceptors: [access.interceptor],
    });
    server.register(ContainersService, { list: () => ({ containers: [] }) } as never);
    const address = join(dir, name);
    await server.listen(address);
    t.teardown(() => server.shutdown({ timeoutMs: 100 }));
    const client = await Client.connect(address);
    t.teardown(() => client.close());
    return client;
  };
  const us = await serveAs("real", (s) => {
    const peer = peerCredentials(s);
    t.equal(peer.pid, process.pid, "SO_PEERCRED names us");
    return peer;
  });
  const list = (c: Client) => c.call(ContainersService.name, "List", new Uint8Array());
  t.ok(await list(us), "admitted");
  const stranger = await serveAs("pretend", (s) => ({ ...peerCredentials(s), uid: 65534, gid: 65534 }));
  await t.rejects(list(stranger), { code: Code.PermissionDenied });
  await t.rejects(list(stranger), { code: Code.PermissionDenied }, "every call");
});
