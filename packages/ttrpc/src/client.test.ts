import { createServer, type Server as NetServer, type Socket } from "node:net";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import t from "tap";
import { Client } from "./client.js";
import {
  encodeFrame,
  FrameDecoder,
  HEADER_LENGTH,
  MAX_DATA_LENGTH,
  MessageType,
  writeHeader,
} from "./frame-codec.js";
import { decodeRequest, encodeResponse, type Request } from "./messages.js";
import { Code, isCode, TtrpcError } from "./status.js";
import {
  connectClient,
  type Msg,
  sleep,
  startServer,
  type Teardown,
  TestService,
  tempDir,
} from "./test-support.js";

async function errorOf(p: Promise<unknown>): Promise<TtrpcError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof TtrpcError) return err;
    throw err;
  }
  throw new Error("expected a rejection");
}

interface Seen {
  id: number;
  type: number;
  flags: number;
  req: Request | undefined;
}

/** A hand-driven server: records every frame and lets the test answer (or not). */
async function rawServer(
  t: Teardown,
  onFrame: (f: Seen, socket: Socket) => void,
): Promise<{ path: string; seen: Seen[]; sockets: Socket[] }> {
  const path = join(tempDir(t), "raw.sock");
  const seen: Seen[] = [];
  const sockets: Socket[] = [];
  const server: NetServer = createServer((socket) => {
    sockets.push(socket);
    socket.on("error", () => {});
    const d = new FrameDecoder({
      frame: (id, type, flags, data) => {
        const f = {
          id,
          type,
          flags,
          req: type === MessageType.Request ? decodeRequest(Buffer.from(data)) : undefined,
        };
        seen.push(f);
        onFrame(f, socket);
      },
      oversize: () => {},
      protocolError: () => socket.destroy(),
    });
    socket.on("data", (c: Buffer) => d.push(c));
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return { path, seen, sockets };
}

const respond = (socket: Socket, id: number, payload: Uint8Array) =>
  socket.write(encodeFrame(id, MessageType.Response, 0, encodeResponse({ payload })));

t.test("hundreds of concurrent calls on one connection, each gets its own answer", async (t) => {
  const { path } = await startServer(t, {
    echo: async (r, ctx) => {
      await delay(Math.random() * 20, undefined, { signal: ctx.signal });
      return { n: r.n! * 2 };
    },
  });
  const client = await connectClient(t, path);
  const stub = client.service(TestService);
  const results = await Promise.all(Array.from({ length: 500 }, (_, n) => stub.echo({ n })));
  t.same(
    results.map((r) => r.n),
    Array.from({ length: 500 }, (_, n) => n * 2),
  );
  t.equal(client.pending, 0);
});

t.test(
  "requests use odd increasing stream ids, unary flags, timeout_nano and lowercased metadata",
  async (t) => {
    const { path, seen } = await rawServer(t, (f, s) => respond(s, f.id, Buffer.from("ok")));
    const client = await connectClient(t, path);
    await client.call("svc", "A", Buffer.from("1"));
    await Promise.all([client.call("svc", "B", Buffer.from("2")), client.call("svc", "C", Buffer.from("3"))]);
    await client.call("svc", "D", Buffer.from("4"), { timeoutMs: 1500, metadata: { "X-Key": ["a", "b"] } });
    t.same(
      seen.map((f) => f.id),
      [1, 3, 5, 7],
    );
    t.ok(seen.every((f) => f.type === MessageType.Request && f.flags === 0));
    t.same(
      seen.map((f) => f.req?.method),
      ["A", "B", "C", "D"],
    );
    t.equal(seen[0]?.req?.timeoutNano, 0);
    t.equal(seen[3]?.req?.timeoutNano, 1_500_000_000);
    t.same(
      seen[3]?.req?.metadata.map((kv) => [kv.key, kv.value]),
      [
        ["x-key", "a"],
        ["x-key", "b"],
      ],
    );
    t.equal(Buffer.from(seen[3]!.req!.payload).toString(), "4");
  },
);

t.test("a response status becomes a TtrpcError with code, message and details", async (t) => {
  const { path } = await rawServer(t, (f, s) =>
    s.write(
      encodeFrame(
        f.id,
        MessageType.Response,
        0,
        encodeResponse({
          status: {
            code: Code.NotFound,
            message: "no task",
            details: [{ typeUrl: "u", value: Buffer.from("v") }],
          },
        }),
      ),
    ),
  );
  const client = await connectClient(t, path);
  const err = await errorOf(client.call("s", "m", Buffer.alloc(0)));
  t.equal(err.code, Code.NotFound);
  t.equal(err.message, "no task");
  t.equal(err.details[0]?.typeUrl, "u");
});

t.test("deadlines: enforced locally, the late answer is dropped, the connection goes on", async (t) => {
  const { path } = await startServer(t, {
    echo: async (r) => {
      await sleep(r.delayMs ?? 0);
      return r;
    },
  });
  const client = await connectClient(t, path);
  const stub = client.service(TestService);
  const t0 = Date.now();
  const err = await errorOf(stub.echo({ delayMs: 300 }, { timeoutMs: 50 }));
  const took = Date.now() - t0;
  t.equal(err.code, Code.DeadlineExceeded);
  t.ok(took >= 45 && took < 250, `failed after ${took} ms`);
  t.equal(client.pending, 0, "the stream is forgotten");
  await sleep(300); // the late response arrives and is ignored
  t.same(await stub.echo({ n: 1 }, { timeoutMs: 1000 }), { n: 1 });
});

t.test("AbortSignal cancels a call with Canceled; AbortSignal.timeout() is a deadline", async (t) => {
  const { path, seen } = await rawServer(t, () => {});
  const client = await connectClient(t, path);
  const ac = new AbortController();
  const p = errorOf(client.call("s", "m", Buffer.alloc(0), { signal: ac.signal }));
  await sleep(10);
  ac.abort();
  const err = await p;
  t.equal(err.code, Code.Canceled);
  t.equal(client.pending, 0);

  const before = seen.length;
  const pre = await errorOf(client.call("s", "m", Buffer.alloc(0), { signal: AbortSignal.abort() }));
  t.equal(pre.code, Code.Canceled);
  await sleep(10);
  t.equal(seen.length, before, "an already aborted call is never sent");

  const to = await errorOf(client.call("s", "m", Buffer.alloc(0), { signal: AbortSignal.timeout(20) }));
  t.equal(to.code, Code.DeadlineExceeded);
});

t.test("when the connection drops, every pending call fails Unavailable and onClose runs", async (t) => {
  const { path, sockets } = await rawServer(t, () => {});
  const client = await connectClient(t, path);
  let closes = 0;
  client.onClose(() => closes++);
  const calls = Array.from({ length: 20 }, (_, i) => errorOf(client.call("s", "m", Buffer.from([i]))));
  await sleep(20);
  t.equal(client.pending, 20);
  for (const s of sockets) s.destroy();
  for (const c of calls) t.equal((await c).code, Code.Unavailable);
  t.equal(closes, 1);
  t.notOk(client.connected);
  t.equal(
    (await errorOf(client.call("s", "m", Buffer.alloc(0)))).code,
    Code.Unavailable,
    "calls after the drop",
  );
  let late = false;
  client.onClose(() => {
    late = true;
  });
  await sleep(1);
  t.ok(late, "onClose registered after the close still runs");
});

t.test("close() fails pending calls and resolves when the socket is closed", async (t) => {
  const { path } = await rawServer(t, () => {});
  const client = await Client.connect(path);
  const pending = errorOf(client.call("s", "m", Buffer.alloc(0)));
  await client.close();
  const err = await pending;
  t.equal(err.code, Code.Unavailable);
  t.match(err.message, /client closed/);
  await client.close();
  t.pass("close twice is fine");
});

t.test("an oversized request is refused locally with ResourceExhausted; the next call works", async (t) => {
  const { path, seen } = await rawServer(t, (f, s) => respond(s, f.id, Buffer.from("ok")));
  const client = await connectClient(t, path);
  const err = await errorOf(client.call("s", "m", Buffer.alloc(MAX_DATA_LENGTH)));
  t.equal(err.code, Code.ResourceExhausted);
  const ok = await client.call("s", "m", Buffer.from("x"));
  t.equal(Buffer.from(ok).toString(), "ok");
  t.same(
    seen.map((f) => f.id),
    [1],
    "the refused call consumed no stream id",
  );
});

t.test("an oversized response fails that call only", async (t) => {
  const { path } = await rawServer(t, (f, s) => {
    if (f.req?.method === "big") {
      const h = Buffer.alloc(HEADER_LENGTH);
      writeHeader(h, 0, MAX_DATA_LENGTH + 1, f.id, MessageType.Response, 0);
      s.write(h);
      s.write(Buffer.alloc(MAX_DATA_LENGTH + 1));
    } else {
      respond(s, f.id, Buffer.from("small"));
    }
  });
  const client = await connectClient(t, path);
  const err = await errorOf(client.call("s", "big", Buffer.alloc(0)));
  t.equal(err.code, Code.ResourceExhausted);
  t.equal(Buffer.from(await client.call("s", "small", Buffer.alloc(0))).toString(), "small");
});

t.test(
  "answers for unknown streams are ignored; garbage from the server closes the connection",
  async (t) => {
    const { path } = await rawServer(t, (f, s) => {
      if (f.req?.method === "junk") {
        s.write(encodeFrame(9999, MessageType.Response, 0, encodeResponse({})));
        respond(s, f.id, Buffer.from("fine"));
      } else {
        s.write(encodeFrame(f.id, 42, 0));
      }
    });
    const client = await connectClient(t, path);
    t.equal(Buffer.from(await client.call("s", "junk", Buffer.alloc(0))).toString(), "fine");
    const err = await errorOf(client.call("s", "garbage", Buffer.alloc(0)));
    t.equal(err.code, Code.Unavailable);
    t.notOk(client.connected);
  },
);

t.test("Client.connect fails with Unavailable when nobody listens", async (t) => {
  const dir = tempDir(t);
  const err = await Client.connect(join(dir, "nobody.sock")).catch((e: unknown) => e);
  t.ok(isCode(err, Code.Unavailable));
});

t.test("new Client(socket) wraps an existing connection", async (t) => {
  const { path } = await startServer(t, { echo: (r: Msg) => r });
  const { connectUnix } = await import("./unix.js");
  const client = new Client(await connectUnix(path));
  t.teardown(() => client.close());
  t.same(await client.service(TestService).echo({ text: "wrapped" }), { text: "wrapped" });
});

t.test("a request message the codec cannot encode is InvalidArgument, nothing is sent", async (t) => {
  const { path, seen } = await rawServer(t, () => {});
  const client = await connectClient(t, path);
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  const err = await errorOf(client.service(TestService).echo(circular as Msg));
  t.equal(err.code, Code.InvalidArgument);
  await sleep(10);
  t.equal(seen.length, 0);
});
