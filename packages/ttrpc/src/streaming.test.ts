// Streams end to end over real unix sockets: server, client and bidi streaming, their wire
// flags, errors mid-stream, deadlines, cancellation and backpressure.

import { createServer } from "node:net";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import t from "tap";
import { STREAM_FULL_TIMEOUT_MS } from "./channel.js";
import { Client } from "./client.js";
import { encodeFrame, Flags, FrameDecoder, MessageType } from "./frame-codec.js";
import { decodeRequest, decodeResponse, encodeRequest } from "./messages.js";
import { Server } from "./server.js";
import type { MethodDescriptor } from "./service.js";
import { Code, errdefs, TtrpcError } from "./status.js";
import {
  bytesCodec,
  connectClient,
  type Msg,
  RawConn,
  sleep,
  startServer,
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

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const v of it) out.push(v);
  return out;
}

const enc = (m: Msg) => Buffer.from(JSON.stringify(m));

t.test("server streaming delivers every message in order, then ends", async (t) => {
  const { path } = await startServer(t, {
    count: async function* (req) {
      for (let n = 0; n < req.n!; n++) {
        if (n % 100 === 0) await sleep(1);
        yield { n };
      }
    },
  });
  const client = await connectClient(t, path);
  const got = await collect(client.service(TestService).count({ n: 1000 }));
  t.same(
    got.map((m) => m.n),
    Array.from({ length: 1000 }, (_, n) => n),
  );
  t.equal(client.pending, 0);
});

t.test("a server-streaming error mid-stream arrives after the messages sent before it", async (t) => {
  const { path } = await startServer(t, {
    count: async function* () {
      yield { n: 1 };
      yield { n: 2 };
      throw errdefs.failedPrecondition("stopped");
    },
  });
  const client = await connectClient(t, path);
  const got: number[] = [];
  const err = await errorOf(
    (async () => {
      for await (const m of client.service(TestService).count({})) got.push(m.n!);
    })(),
  );
  t.same(got, [1, 2]);
  t.equal(err.code, Code.FailedPrecondition);
  t.equal(err.message, "stopped");
});

t.test("client streaming: send, closeSend, one response", async (t) => {
  const { path } = await startServer(t, {
    sum: async (reqs) => {
      let total = 0;
      for await (const r of reqs) total += r.n!;
      return { n: total };
    },
  });
  const client = await connectClient(t, path);
  const call = client.service(TestService).sum();
  for (let i = 1; i <= 100; i++) await call.send({ n: i });
  call.closeSend();
  t.same(await call.response, { n: 5050 });
  await t.rejects(call.send({ n: 1 }), { code: Code.FailedPrecondition }, "send after closeSend");
});

t.test("client streaming: the handler may answer early; later sends are refused locally", async (t) => {
  const { path } = await startServer(t, {
    sum: async (reqs) => {
      for await (const r of reqs) return { n: r.n };
      return {};
    },
  });
  const client = await connectClient(t, path);
  const call = client.service(TestService).sum();
  await call.send({ n: 7 });
  t.same(await call.response, { n: 7 });
  await t.rejects(call.send({ n: 8 }), { code: Code.FailedPrecondition });
});

t.test("client streaming: a handler error is the response's rejection", async (t) => {
  const { path } = await startServer(t, {
    sum: async (reqs) => {
      for await (const _ of reqs) throw errdefs.invalidArgument("no thanks");
      return {};
    },
  });
  const client = await connectClient(t, path);
  const call = client.service(TestService).sum();
  await call.send({ n: 1 });
  const err = await errorOf(call.response);
  t.equal(err.code, Code.InvalidArgument);
  await t.rejects(call.send({ n: 2 }), { code: Code.InvalidArgument }, "sends fail with the stream's error");
});

t.test("bidi: interleaved send and receive, closeSend ends the server's input", async (t) => {
  const { path } = await startServer(t, {
    chat: async function* (reqs) {
      for await (const r of reqs) yield { text: `re: ${r.text}` };
      yield { text: "bye" };
    },
  });
  const client = await connectClient(t, path);
  const chat = client.service(TestService).chat();
  const it = chat[Symbol.asyncIterator]();
  for (const word of ["a", "b", "c"]) {
    await chat.send({ text: word });
    t.same((await it.next()).value, { text: `re: ${word}` });
  }
  chat.closeSend();
  t.same((await it.next()).value, { text: "bye" });
  t.equal((await it.next()).done, true);
});

t.test("wire flags of streams match Go ttrpc", async (t) => {
  const { path } = await startServer(t, {
    count: function* (req) {
      for (let n = 0; n < req.n!; n++) yield { n };
    },
    sum: async (reqs) => {
      let total = 0;
      for await (const r of reqs) total += r.n!;
      return { n: total };
    },
  });
  const raw = await RawConn.open(t, path);
  // Server streaming: request remote-closed with payload; data frames, then data RC|NoData.
  raw.write(
    encodeFrame(
      1,
      MessageType.Request,
      Flags.RemoteClosed,
      encodeRequest({ service: TestService.name, method: "Count", payload: enc({ n: 2 }) }),
    ),
  );
  const f1 = await raw.frame(1);
  const f2 = await raw.frame(2);
  const f3 = await raw.frame(3);
  t.same([f1.type, f1.flags, JSON.parse(f1.data.toString())], [MessageType.Data, 0, { n: 0 }]);
  t.same([f2.type, f2.flags], [MessageType.Data, 0]);
  t.same(
    [f3.id, f3.type, f3.flags, f3.data.length],
    [1, MessageType.Data, Flags.RemoteClosed | Flags.NoData, 0],
  );

  // Client streaming, Go style: request remote-open without payload, data frames, data RC|NoData.
  raw.write(
    encodeFrame(
      3,
      MessageType.Request,
      Flags.RemoteOpen,
      encodeRequest({ service: TestService.name, method: "Sum" }),
    ),
  );
  raw.write(encodeFrame(3, MessageType.Data, 0, enc({ n: 4 })));
  raw.write(encodeFrame(3, MessageType.Data, 0, enc({ n: 5 })));
  raw.write(encodeFrame(3, MessageType.Data, Flags.RemoteClosed | Flags.NoData));
  const f4 = await raw.frame(4);
  t.same([f4.id, f4.type, f4.flags], [3, MessageType.Response, 0]);
  t.same(JSON.parse(Buffer.from(decodeResponse(f4.data).payload).toString()), { n: 9 });

  // A payload in a streaming request is its first message; data with RC and a payload is the last.
  raw.write(
    encodeFrame(
      5,
      MessageType.Request,
      Flags.RemoteOpen,
      encodeRequest({ service: TestService.name, method: "Sum", payload: enc({ n: 1 }) }),
    ),
  );
  raw.write(encodeFrame(5, MessageType.Data, Flags.RemoteClosed, enc({ n: 2 })));
  const f5 = await raw.frame(5);
  t.same(JSON.parse(Buffer.from(decodeResponse(f5.data).payload).toString()), { n: 3 });

  // A streaming-client request that is already remote-closed has no more input.
  raw.write(
    encodeFrame(
      7,
      MessageType.Request,
      Flags.RemoteClosed,
      encodeRequest({ service: TestService.name, method: "Sum", payload: enc({ n: 10 }) }),
    ),
  );
  const f6 = await raw.frame(6);
  t.same(JSON.parse(Buffer.from(decodeResponse(f6.data).payload).toString()), { n: 10 });
  t.notOk(raw.closed);
});

t.test("client-side flags: server streams open remote-closed, client/bidi streams remote-open", async (t) => {
  const seen: { id: number; type: number; flags: number; hasPayload?: boolean }[] = [];
  const path = join(tempDir(t), "flags.sock");
  const srv = createServer((s) => {
    s.on("error", () => {});
    const d = new FrameDecoder({
      frame: (id, type, flags, data) =>
        seen.push(
          type === MessageType.Request
            ? { id, type, flags, hasPayload: decodeRequest(data).hasPayload }
            : { id, type, flags },
        ),
      oversize: () => {},
      protocolError: () => {},
    });
    s.on("data", (c: Buffer) => d.push(c));
  });
  await new Promise<void>((r) => srv.listen(path, r));
  const client = await Client.connect(path);
  t.teardown(async () => {
    await client.close();
    await new Promise<void>((r) => srv.close(() => r()));
  });
  const stub = client.service(TestService);
  void stub.count({ n: 1 })[Symbol.asyncIterator]();
  const sum = stub.sum();
  await sum.send({ n: 1 });
  sum.closeSend();
  const chat = stub.chat();
  await chat.send({ text: "x" });
  chat.closeSend();
  await sleep(50);
  t.same(seen, [
    { id: 1, type: MessageType.Request, flags: Flags.RemoteClosed, hasPayload: true },
    { id: 3, type: MessageType.Request, flags: Flags.RemoteOpen, hasPayload: false },
    { id: 3, type: MessageType.Data, flags: 0 },
    { id: 3, type: MessageType.Data, flags: Flags.RemoteClosed | Flags.NoData },
    { id: 5, type: MessageType.Request, flags: Flags.RemoteOpen, hasPayload: false },
    { id: 5, type: MessageType.Data, flags: 0 },
    { id: 5, type: MessageType.Data, flags: Flags.RemoteClosed | Flags.NoData },
  ]);
});

t.test("empty messages are messages (zero-length data without the no-data flag)", async (t) => {
  const Bytes = {
    name: "tsrunc.test.v1.Bytes",
    methods: {
      stream: {
        name: "Stream",
        kind: "server",
        requestType: bytesCodec,
        responseType: bytesCodec,
      } as MethodDescriptor<Uint8Array, Uint8Array, "server">,
    },
  };
  const server = new Server();
  server.register(Bytes, {
    stream: function* () {
      yield new Uint8Array(0);
      yield new Uint8Array([1]);
      yield new Uint8Array(0);
    },
  });
  const path = join(tempDir(t), "b.sock");
  await server.listen(path);
  t.teardown(() => server.close());
  const client = await connectClient(t, path);
  const got = await collect(client.service(Bytes).stream(new Uint8Array(0)));
  t.same(
    got.map((b) => [...b]),
    [[], [1], []],
  );
});

t.test("deadlines end streams on both sides", async (t) => {
  let serverReason: unknown;
  const { path } = await startServer(t, {
    count: async function* (_req, ctx) {
      try {
        for (let n = 0; ; n++) {
          await delay(10, undefined, { signal: ctx.signal });
          yield { n };
        }
      } finally {
        serverReason = ctx.signal.reason;
      }
    },
  });
  const client = await connectClient(t, path);
  const got: number[] = [];
  const err = await errorOf(
    (async () => {
      for await (const m of client.service(TestService).count({}, { timeoutMs: 100 })) got.push(m.n!);
    })(),
  );
  t.equal(err.code, Code.DeadlineExceeded);
  t.ok(got.length > 0, `received ${got.length} before the deadline`);
  await sleep(50);
  t.ok(serverReason instanceof TtrpcError && serverReason.code === Code.DeadlineExceeded);
});

t.test("a client-streaming handler's input fails when the deadline passes", async (t) => {
  let inputError: unknown;
  const { path } = await startServer(t, {
    sum: async (reqs) => {
      try {
        for await (const _ of reqs) {
        }
      } catch (err) {
        inputError = err;
        throw err;
      }
      return {};
    },
  });
  const client = await connectClient(t, path);
  const call = client.service(TestService).sum({ timeoutMs: 50 });
  await call.send({ n: 1 });
  t.equal((await errorOf(call.response)).code, Code.DeadlineExceeded);
  await sleep(50);
  t.ok(inputError instanceof TtrpcError && inputError.code === Code.DeadlineExceeded);
});

t.test("an AbortSignal cancels a stream; the connection stays usable", async (t) => {
  const { path } = await startServer(t, {
    count: async function* (_req, ctx) {
      for (let n = 0; ; n++) {
        await delay(5, undefined, { signal: ctx.signal });
        yield { n };
      }
    },
    echo: (r) => r,
  });
  const client = await connectClient(t, path);
  const ac = new AbortController();
  let seen = 0;
  const err = await errorOf(
    (async () => {
      for await (const _ of client.service(TestService).count({}, { signal: ac.signal })) {
        if (++seen === 3) ac.abort();
      }
    })(),
  );
  t.equal(err.code, Code.Canceled);
  t.same(await client.service(TestService).echo({ n: 1 }), { n: 1 });
});

t.test("breaking out of a stream early leaves the connection usable", async (t) => {
  const { path } = await startServer(t, {
    count: function* () {
      for (let n = 0; n < 10_000; n++) yield { n };
    },
    echo: (r) => r,
  });
  const client = await connectClient(t, path);
  for await (const m of client.service(TestService).count({})) {
    if (m.n === 5) break;
  }
  t.same(await client.service(TestService).echo({ n: 2 }), { n: 2 });
  await sleep(100);
  t.equal(client.pending, 0, "the abandoned stream was still drained to its end");
});

t.test("a peer that disconnects mid-stream aborts the handler and runs its finally", async (t) => {
  let finalized = false;
  let reason: unknown;
  let started!: () => void;
  const running = new Promise<void>((r) => {
    started = r;
  });
  const { path, server } = await startServer(t, {
    count: async function* (_req, ctx) {
      try {
        started();
        for (let n = 0; ; n++) {
          await delay(5, undefined, { signal: ctx.signal });
          yield { n };
        }
      } finally {
        finalized = true;
        reason = ctx.signal.reason;
      }
    },
  });
  const client = await Client.connect(path);
  const it = client.service(TestService).count({})[Symbol.asyncIterator]();
  await it.next();
  await running;
  await client.close();
  await sleep(50);
  t.ok(finalized);
  t.ok(reason instanceof TtrpcError && reason.code === Code.Canceled);
  t.equal(server.connectionCount, 0);
});

t.test("large messages both ways (1 MiB each)", async (t) => {
  const Bytes = {
    name: "tsrunc.test.v1.Big",
    methods: {
      bounce: {
        name: "Bounce",
        kind: "bidi",
        requestType: bytesCodec,
        responseType: bytesCodec,
      } as MethodDescriptor<Uint8Array, Uint8Array, "bidi">,
    },
  };
  const server = new Server();
  server.register(Bytes, {
    bounce: async function* (reqs) {
      for await (const r of reqs) yield r;
    },
  });
  const path = join(tempDir(t), "big.sock");
  await server.listen(path);
  t.teardown(() => server.close());
  const client = await connectClient(t, path);
  const call = client.service(Bytes).bounce();
  const sent: Buffer[] = [];
  const receiving = collect(call);
  for (let i = 0; i < 8; i++) {
    const b = Buffer.alloc(1 << 20, i);
    sent.push(b);
    await call.send(b);
  }
  call.closeSend();
  const got = await receiving;
  t.equal(got.length, 8);
  t.ok(got.every((b, i) => Buffer.from(b).equals(sent[i]!)));
});

t.test(
  "a slow consumer still gets everything: reading pauses instead of buffering without end",
  async (t) => {
    const { path } = await startServer(t, {
      count: function* (req) {
        for (let n = 0; n < req.n!; n++) yield { n, text: "x".repeat(1000) };
      },
    });
    const client = await connectClient(t, path);
    let expect = 0;
    let ordered = true;
    for await (const m of client.service(TestService).count({ n: 500 })) {
      if (m.n !== expect++) ordered = false;
      if (expect % 50 === 0) await sleep(5);
    }
    t.equal(expect, 500);
    t.ok(ordered);
  },
);

t.test(
  "a consumer stuck for over a second loses its stream (ResourceExhausted), not the connection",
  async (t) => {
    const { path } = await startServer(t, {
      count: function* () {
        for (let n = 0; n < 100_000; n++) yield { n };
      },
      echo: (r) => r,
    });
    const client = await connectClient(t, path);
    const it = client.service(TestService).count({})[Symbol.asyncIterator]();
    await it.next();
    const other = client.service(TestService).echo({ n: 3 }); // queued behind the paused reads
    await sleep(STREAM_FULL_TIMEOUT_MS + 200);
    t.same(await other, { n: 3 });
    let err: unknown;
    try {
      for (;;) if ((await it.next()).done) break;
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof TtrpcError && err.code === Code.ResourceExhausted, String(err));
  },
);
