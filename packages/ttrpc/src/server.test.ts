import { existsSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import t from "tap";
import { Client } from "./client.js";
import {
  encodeFrame,
  Flags,
  HEADER_LENGTH,
  MAX_DATA_LENGTH,
  MessageType,
  writeHeader,
} from "./frame-codec.js";
import { decodeResponse, encodeRequest } from "./messages.js";
import { type CallContext, Server } from "./server.js";
import { Code, errdefs, isCode, TtrpcError } from "./status.js";
import {
  connectClient,
  type Msg,
  RawConn,
  sleep,
  startServer,
  TestService,
  tempDir,
} from "./test-support.js";

const SERVICE = TestService.name;
const enc = (m: Msg) => Buffer.from(JSON.stringify(m));

/** A Request frame for Echo, as raw bytes. */
function echoRequest(id: number, m: Msg, flags = 0): Buffer {
  return encodeFrame(
    id,
    MessageType.Request,
    flags,
    encodeRequest({ service: SERVICE, method: "Echo", payload: enc(m) }),
  );
}

async function errorOf(p: Promise<unknown>): Promise<TtrpcError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof TtrpcError) return err;
    throw err;
  }
  throw new Error("expected a rejection");
}

t.test("unary round trip; the handler sees metadata, deadline and names", async (t) => {
  let seen: CallContext | undefined;
  const { path } = await startServer(t, {
    echo: (req, ctx) => {
      seen = ctx;
      return { text: `echo ${req.text}` };
    },
  });
  const client = await connectClient(t, path);
  const stub = client.service(TestService);
  const before = Date.now();
  const res = await stub.echo(
    { text: "hi" },
    { timeoutMs: 5000, metadata: { "X-Trace": "abc", multi: ["1", "2"] } },
  );
  t.same(res, { text: "echo hi" });
  t.equal(seen?.service, SERVICE);
  t.equal(seen?.method, "Echo");
  t.same(seen?.metadata["x-trace"], ["abc"]);
  t.same(seen?.metadata.multi, ["1", "2"]);
  t.ok(
    seen!.deadline! >= before + 4900 && seen!.deadline! <= Date.now() + 5000,
    "deadline from timeout_nano",
  );
  t.equal(seen?.peer, undefined);
  await stub.echo({ text: "no deadline" });
  t.equal(seen?.deadline, undefined);
});

t.test("unknown service, unknown method and unimplemented handler answer Unimplemented", async (t) => {
  const { path } = await startServer(t, { echo: (r) => r });
  const client = await connectClient(t, path);
  const a = await errorOf(client.call("no.such.Service", "Echo", new Uint8Array()));
  t.equal(a.code, Code.Unimplemented);
  t.equal(a.message, "service no.such.Service");
  const b = await errorOf(client.call(SERVICE, "Nope", new Uint8Array()));
  t.equal(b.code, Code.Unimplemented);
  t.equal(b.message, "method Nope");
  const c = await errorOf(client.service(TestService).echoBytes(new Uint8Array([1])));
  t.equal(c.code, Code.Unimplemented, "a method the impl leaves out");
  t.same(await client.service(TestService).echo({ n: 1 }), { n: 1 }, "connection still fine");
});

t.test("handler errors become their status; errors without a code become Unknown", async (t) => {
  const { path } = await startServer(t, {
    echo: async (req) => {
      switch (req.fail) {
        case 1:
          throw errdefs.notFound("container x");
        case 2:
          throw new Error("plain");
        case 3:
          throw "a string";
        case 4:
          throw new TtrpcError(Code.FailedPrecondition, "with details", {
            details: [{ typeUrl: "type.googleapis.com/t", value: new Uint8Array([7]) }],
          });
        default:
          return req;
      }
    },
    echoBytes: () => {
      throw errdefs.alreadyExists("sync throw");
    },
  });
  const client = await connectClient(t, path);
  const stub = client.service(TestService);
  const nf = await errorOf(stub.echo({ fail: 1 }));
  t.equal(nf.code, Code.NotFound);
  t.equal(nf.message, "container x");
  const plain = await errorOf(stub.echo({ fail: 2 }));
  t.equal(plain.code, Code.Unknown);
  t.equal(plain.message, "plain");
  const str = await errorOf(stub.echo({ fail: 3 }));
  t.equal(str.code, Code.Unknown);
  t.equal(str.message, "a string");
  const det = await errorOf(stub.echo({ fail: 4 }));
  t.equal(det.code, Code.FailedPrecondition);
  t.same(
    det.details.map((d) => [d.typeUrl, [...d.value]]),
    [["type.googleapis.com/t", [7]]],
  );
  const sync = await errorOf(stub.echoBytes(new Uint8Array()));
  t.equal(sync.code, Code.AlreadyExists);
  t.same(await stub.echo({ n: 2 }), { n: 2 }, "server alive");
});

t.test("an unencodable response is Internal; an undecodable payload is InvalidArgument", async (t) => {
  const { path } = await startServer(t, { echo: () => undefined as unknown as Msg });
  const client = await connectClient(t, path);
  const a = await errorOf(client.service(TestService).echo({}));
  t.equal(a.code, Code.Internal);
  const b = await errorOf(client.call(SERVICE, "Echo", Buffer.from("{not json")));
  t.equal(b.code, Code.InvalidArgument);
});

t.test("ctx.signal aborts with DeadlineExceeded when the deadline passes", async (t) => {
  let reason: unknown;
  const { path } = await startServer(t, {
    echo: (_req, ctx) =>
      new Promise((_resolve, reject) => {
        ctx.signal.addEventListener("abort", () => {
          reason = ctx.signal.reason;
          reject(ctx.signal.reason);
        });
      }),
  });
  const client = await connectClient(t, path);
  const err = await errorOf(client.service(TestService).echo({}, { timeoutMs: 50 }));
  t.equal(err.code, Code.DeadlineExceeded, "client-side deadline");
  await sleep(50);
  t.ok(isCode(reason, Code.DeadlineExceeded), "server-side abort reason");
});

t.test("ctx.signal aborts with Canceled when the peer disconnects", async (t) => {
  let started!: () => void;
  const running = new Promise<void>((r) => {
    started = r;
  });
  let aborted!: (reason: unknown) => void;
  const abortedP = new Promise<unknown>((r) => {
    aborted = r;
  });
  const { path, server } = await startServer(t, {
    echo: (_req, ctx) => {
      ctx.signal.addEventListener("abort", () => aborted(ctx.signal.reason));
      started();
      return new Promise<Msg>(() => {});
    },
  });
  const client = await Client.connect(path);
  const pending = client.service(TestService).echo({});
  pending.catch(() => {});
  await running;
  await client.close();
  t.ok(isCode(await abortedP, Code.Canceled));
  t.ok(isCode(await pending.catch((e: unknown) => e), Code.Unavailable));
  await sleep(10);
  t.equal(server.connectionCount, 0);
});

t.test("a >4 MiB request gets ResourceExhausted and the next call on the connection succeeds", async (t) => {
  const { path } = await startServer(t, { echo: (r) => r, echoBytes: (b) => b });
  // Through the client: refused before sending, as Go's client does.
  const client = await connectClient(t, path);
  const big = Buffer.alloc(MAX_DATA_LENGTH + 1);
  const local = await errorOf(client.call(SERVICE, "EchoBytes", big));
  t.equal(local.code, Code.ResourceExhausted);
  t.same(await client.service(TestService).echo({ n: 1 }), { n: 1 });

  // On the wire: the server discards the body and answers on that stream.
  const raw = await RawConn.open(t, path);
  const header = Buffer.alloc(HEADER_LENGTH);
  writeHeader(header, 0, MAX_DATA_LENGTH + 100, 1, MessageType.Request, 0);
  raw.write(header);
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  for (let left = MAX_DATA_LENGTH + 100; left > 0; left -= chunk.length) {
    raw.write(chunk.subarray(0, Math.min(left, chunk.length)));
  }
  raw.write(echoRequest(3, { text: "after" }));
  const f1 = await raw.frame(1);
  t.equal(f1.id, 1);
  t.equal(RawConn.response(f1).status.code, Code.ResourceExhausted);
  const f2 = await raw.frame(2);
  t.equal(f2.id, 3);
  const r2 = RawConn.response(f2);
  t.equal(r2.status.code, Code.OK);
  t.same(JSON.parse(Buffer.from(r2.payload).toString()), { text: "after" });
  t.notOk(raw.closed);
});

t.test("undecodable Request bytes answer InvalidArgument and the connection stays", async (t) => {
  const { path } = await startServer(t, { echo: (r) => r });
  const raw = await RawConn.open(t, path);
  raw.write(encodeFrame(1, MessageType.Request, 0, Buffer.from([0x0a, 0x50, 0x01])));
  raw.write(echoRequest(3, { n: 3 }));
  const f1 = await raw.frame(1);
  t.equal(f1.id, 1);
  t.equal(RawConn.response(f1).status.code, Code.InvalidArgument);
  const f2 = await raw.frame(2);
  t.equal(RawConn.response(f2).status.code, Code.OK);
});

t.test("the wire shape of a unary answer matches Go ttrpc", async (t) => {
  const { path } = await startServer(t, { echo: (r) => r });
  const raw = await RawConn.open(t, path);
  raw.write(echoRequest(7, { text: "x" }));
  const f = await raw.frame(1);
  t.same({ id: f.id, type: f.type, flags: f.flags }, { id: 7, type: MessageType.Response, flags: 0 });
  const r = decodeResponse(f.data);
  t.equal(r.status.code, 0);
  t.same(JSON.parse(Buffer.from(r.payload).toString()), { text: "x" });
});

const violations: [string, (raw: RawConn) => void][] = [
  ["even stream id", (raw) => raw.write(echoRequest(2, {}))],
  ["stream id zero", (raw) => raw.write(echoRequest(0, {}))],
  ["unknown message type", (raw) => raw.write(encodeFrame(1, 7, 0, Buffer.from("x")))],
  ["a Response sent to the server", (raw) => raw.write(encodeFrame(1, MessageType.Response, 0))],
  [
    "reused stream id",
    (raw) => {
      raw.write(echoRequest(5, {}));
      raw.write(echoRequest(5, {}));
    },
  ],
  [
    "decreasing stream id",
    (raw) => {
      raw.write(echoRequest(9, {}));
      raw.write(echoRequest(7, {}));
    },
  ],
  [
    "data on a unary stream",
    (raw) => {
      raw.write(echoRequest(1, { delayMs: 1000 }));
      raw.write(encodeFrame(1, MessageType.Data, 0, enc({})));
    },
  ],
  ["data on a stream never opened", (raw) => raw.write(encodeFrame(11, MessageType.Data, 0, enc({})))],
  [
    "data after the client closed its side",
    (raw) => {
      raw.write(
        encodeFrame(
          1,
          MessageType.Request,
          Flags.RemoteOpen,
          encodeRequest({ service: SERVICE, method: "Sum" }),
        ),
      );
      raw.write(encodeFrame(1, MessageType.Data, Flags.RemoteClosed | Flags.NoData));
      raw.write(encodeFrame(1, MessageType.Data, 0, enc({ n: 1 })));
    },
  ],
];

t.test("a protocol violation closes that connection only", async (t) => {
  const errors: Error[] = [];
  const { path } = await startServer(
    t,
    {
      echo: async (r, ctx) => {
        if (r.delayMs) await delay(r.delayMs, undefined, { signal: ctx.signal });
        return r;
      },
      // Sum never finishes on its own: only the violation can end this connection.
      sum: async (reqs, ctx) => {
        for await (const _ of reqs) {
        }
        await delay(5000, undefined, { signal: ctx.signal });
        return {};
      },
    },
    { onError: (e) => errors.push(e) },
  );
  const bystander = await connectClient(t, path);
  const stub = bystander.service(TestService);
  for (const [name, act] of violations) {
    const slow = stub.echo({ delayMs: 100, n: 1 });
    const raw = await RawConn.open(t, path);
    act(raw);
    await raw.whenClosed();
    t.pass(`${name}: connection closed`);
    t.same(await slow, { delayMs: 100, n: 1 }, `${name}: other connection's in-flight call unaffected`);
    t.same(await stub.echo({ n: 2 }), { n: 2 }, `${name}: server alive`);
  }
  t.ok(errors.length >= violations.length, "each violation reported to onError");
  t.ok(
    errors.every((e) => e instanceof TtrpcError),
    "reported as TtrpcErrors",
  );
});

t.test("data for a stream that already finished is ignored (benign race)", async (t) => {
  const { path } = await startServer(t, { echo: (r) => r });
  const raw = await RawConn.open(t, path);
  raw.write(echoRequest(1, {}));
  await raw.frame(1);
  raw.write(encodeFrame(1, MessageType.Data, 0, enc({})));
  raw.write(echoRequest(3, { n: 3 }));
  const f = await raw.frame(2);
  t.equal(f.id, 3);
  t.notOk(raw.closed);
});

t.test("streams over the per-connection cap answer ResourceExhausted", async (t) => {
  const { path } = await startServer(
    t,
    {
      echo: async (r) => {
        await sleep(r.delayMs ?? 0);
        return r;
      },
    },
    { maxStreamsPerConnection: 4 },
  );
  const client = await connectClient(t, path);
  const stub = client.service(TestService);
  const results = await Promise.allSettled(
    Array.from({ length: 6 }, (_, n) => stub.echo({ n, delayMs: 100 })),
  );
  const ok = results.filter((r) => r.status === "fulfilled").length;
  const exhausted = results.filter(
    (r) => r.status === "rejected" && isCode(r.reason, Code.ResourceExhausted),
  ).length;
  t.equal(ok, 4);
  t.equal(exhausted, 2);
  t.same(await stub.echo({ n: 9 }), { n: 9 }, "room again once calls finish");
  // Another connection has its own budget.
  const other = await connectClient(t, path);
  const more = await Promise.all(Array.from({ length: 4 }, (_, n) => other.service(TestService).echo({ n })));
  t.equal(more.length, 4);
});

t.test("shutdown() lets in-flight calls finish, refuses new work, then closes", async (t) => {
  const dir = tempDir(t);
  const path = join(dir, "s.sock");
  const server = new Server();
  let started = 0;
  server.register(TestService, {
    echo: async (r: Msg) => {
      started++;
      await sleep(r.delayMs ?? 0);
      return r;
    },
  } as never);
  await server.listen(path);
  t.teardown(() => server.close());
  const busy = await connectClient(t, path);
  const idle = await connectClient(t, path);
  const idleClosed = new Promise<void>((r) => idle.onClose(() => r()));
  const stub = busy.service(TestService);
  const inflight = Array.from({ length: 10 }, (_, n) => stub.echo({ n, delayMs: 200 }));
  while (started < 10) await sleep(5);
  const done = server.shutdown();
  await idleClosed;
  t.pass("idle connection closed at once");
  const late = await errorOf(stub.echo({ n: 99 }));
  t.equal(late.code, Code.Unavailable, "new call on a busy connection during shutdown");
  await t.rejects(Client.connect(path), { code: Code.Unavailable }, "no new connections");
  const results = await Promise.all(inflight);
  t.same(
    results.map((r) => r.n),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  );
  await done;
  t.equal(server.connectionCount, 0);
  t.notOk(existsSync(path), "socket file removed");
});

t.test("shutdown({timeoutMs}) forces what does not finish; handlers see their signal abort", async (t) => {
  let aborted = false;
  const { path, server } = await startServer(t, {
    echo: (_r, ctx) =>
      new Promise<Msg>((_resolve, reject) => {
        ctx.signal.addEventListener("abort", () => {
          aborted = true;
          reject(ctx.signal.reason);
        });
      }),
  });
  const client = await connectClient(t, path);
  const stuck = errorOf(client.service(TestService).echo({}));
  await sleep(20);
  const t0 = Date.now();
  await server.shutdown({ timeoutMs: 100 });
  t.ok(Date.now() - t0 < 1000);
  t.ok(aborted);
  t.equal((await stuck).code, Code.Unavailable);
});

t.test("close() drops every connection at once", async (t) => {
  const { path, server } = await startServer(t, { echo: () => new Promise<Msg>(() => {}) });
  const client = await connectClient(t, path);
  const closed = new Promise<void>((r) => client.onClose(() => r()));
  const calls = Array.from({ length: 5 }, () => errorOf(client.service(TestService).echo({})));
  await sleep(20);
  await server.close();
  await closed;
  for (const c of calls) t.equal((await c).code, Code.Unavailable);
  await t.rejects(Client.connect(path), { code: Code.Unavailable });
});

t.test("peerCheck refuses connections; peerCredentials reach peerCheck and handlers", async (t) => {
  const creds = { pid: 42, uid: 1000, gid: 1000 };
  let checked: unknown;
  let allow = false;
  const errors: Error[] = [];
  const { path } = await startServer(
    t,
    { echo: (_r, ctx) => ({ text: JSON.stringify(ctx.peer) }) },
    {
      peerCredentials: () => creds,
      peerCheck: async (_socket, peer) => {
        checked = peer;
        await sleep(5);
        return allow;
      },
      onError: (e) => errors.push(e),
    },
  );
  const refused = await Client.connect(path);
  t.teardown(() => refused.close());
  const err = await errorOf(refused.service(TestService).echo({}));
  t.equal(err.code, Code.Unavailable, "refused peer's call fails");
  t.same(checked, creds);
  t.ok(errors.some((e) => isCode(e, Code.PermissionDenied)));
  allow = true;
  const client = await connectClient(t, path);
  const res = await client.service(TestService).echo({});
  t.same(JSON.parse(res.text!), creds);
});

t.test("a peerCheck that throws refuses the connection and the server carries on", async (t) => {
  let calls = 0;
  const { path } = await startServer(
    t,
    { echo: (r) => r },
    {
      peerCheck: () => {
        if (calls++ === 0) throw new Error("checker broke");
        return true;
      },
    },
  );
  const first = await Client.connect(path);
  t.teardown(() => first.close());
  t.equal((await errorOf(first.service(TestService).echo({}))).code, Code.Unavailable);
  const second = await connectClient(t, path);
  t.same(await second.service(TestService).echo({ n: 1 }), { n: 1 });
});

t.test("registering a service twice is a programming error", async (t) => {
  const s = new Server();
  s.register(TestService, {} as never);
  t.throws(() => s.register(TestService, {} as never));
});

t.test("serve() takes an existing listener", async (t) => {
  const dir = tempDir(t);
  const { listenUnix } = await import("./unix.js");
  const listener = await listenUnix(join(dir, "fd.sock"));
  const server = new Server();
  server.register(TestService, { echo: (r: Msg) => r } as never);
  server.serve(listener);
  t.teardown(() => server.close());
  const client = await connectClient(t, join(dir, "fd.sock"));
  t.same(await client.service(TestService).echo({ n: 5 }), { n: 5 });
});

t.test("a deadline beyond Node's timer range is not an immediate abort", async (t) => {
  let aborted: boolean | undefined;
  const { path } = await startServer(t, {
    echo: async (r, ctx) => {
      await sleep(20);
      aborted = ctx.signal.aborted;
      return r;
    },
  });
  const client = await connectClient(t, path);
  const thirtyDays = 30 * 24 * 3600 * 1000;
  t.same(await client.service(TestService).echo({ n: 1 }, { timeoutMs: thirtyDays }), { n: 1 });
  t.equal(aborted, false);
});

t.test(
  "a handler may start shutdown (the Task Shutdown pattern); its own answer still goes out",
  async (t) => {
    const dir = tempDir(t);
    const path = join(dir, "s.sock");
    const server = new Server();
    let stopped: Promise<void> | undefined;
    server.register(TestService, {
      echo: async (r: Msg) => {
        stopped = server.shutdown();
        return r;
      },
    } as never);
    await server.listen(path);
    t.teardown(() => server.close());
    const client = await connectClient(t, path);
    const closed = new Promise<void>((r) => client.onClose(() => r()));
    t.same(await client.service(TestService).echo({ text: "last words" }), { text: "last words" });
    await stopped;
    await closed;
    t.equal(server.connectionCount, 0);
  },
);
