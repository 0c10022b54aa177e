// Client and Server over memoryPair(): the same calls as over a unix socket, without one.

import t from "tap";
import { Client } from "./client.js";
import { memoryPair, serveInMemory } from "./memory-transport.js";
import { Server, type ServiceImpl } from "./server.js";
import { Code, isCode, TtrpcError } from "./status.js";
import { type Msg, sleep, type Teardown, TestService } from "./test-support.js";

function inMemory(t: Teardown, impl: Partial<ServiceImpl<typeof TestService>>) {
  const server = new Server();
  server.register(TestService, impl as ServiceImpl<typeof TestService>);
  t.teardown(() => server.close());
  const client = serveInMemory(server, { peer: { pid: 1, uid: 2, gid: 3 } });
  t.teardown(() => client.close());
  return { server, client, stub: client.service(TestService) };
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const m of it) out.push(m);
  return out;
}

t.test("a unary call, with metadata, deadline and peer, over an in-memory connection", async (t) => {
  const { stub, server } = inMemory(t, {
    echo: (req, ctx) => {
      if (req.fail !== undefined) throw new TtrpcError(req.fail, "failed as asked");
      return {
        text: `${req.text} ${ctx.metadata["x-who"]?.[0]} ${ctx.peer?.uid} ${ctx.deadline !== undefined}`,
      };
    },
  });
  t.same(await stub.echo({ text: "hi" }, { metadata: { "x-who": "me" }, timeoutMs: 5000 }), {
    text: "hi me 2 true",
  });
  t.equal(server.connectionCount, 1);
  const err = await stub.echo({ fail: Code.NotFound }).catch((e: unknown) => e);
  t.ok(isCode(err, Code.NotFound), "a handler's error arrives with its code");
});

t.test("every stream kind over an in-memory connection", async (t) => {
  const { stub } = inMemory(t, {
    count: async function* (req) {
      for (let n = 0; n < req.n!; n++) yield { n };
    },
    sum: async (reqs) => {
      let n = 0;
      for await (const r of reqs) n += r.n ?? 0;
      return { n };
    },
    chat: async function* (reqs) {
      for await (const r of reqs) yield { text: `re: ${r.text}` };
    },
  });
  const got = await collect(stub.count({ n: 500 }));
  t.same(
    got.map((m) => m.n),
    Array.from({ length: 500 }, (_, n) => n),
  );

  const sum = stub.sum();
  for (let n = 1; n <= 10; n++) await sum.send({ n });
  sum.closeSend();
  t.same(await sum.response, { n: 55 });

  const chat = stub.chat();
  await chat.send({ text: "a" });
  await chat.send({ text: "b" });
  chat.closeSend();
  t.same(await collect(chat), [{ text: "re: a" }, { text: "re: b" }]);
});

t.test("a slow reader holds the writer back; 1 MiB messages arrive intact", async (t) => {
  const big = "x".repeat(1 << 20);
  const { stub } = inMemory(t, {
    count: async function* (req) {
      for (let n = 0; n < req.n!; n++) yield { n, text: big };
    },
  });
  let n = 0;
  for await (const m of stub.count({ n: 20 })) {
    t.equal(m.text?.length, big.length);
    t.equal(m.n, n++);
    if (n % 5 === 0) await sleep(5);
  }
  t.equal(n, 20);
});

t.test("closing either side is seen by the other", async (t) => {
  let started!: () => void;
  const running = new Promise<void>((r) => {
    started = r;
  });
  let reason: unknown;
  const { server, client, stub } = inMemory(t, {
    echo: (_req, ctx) =>
      new Promise<Msg>((resolve) => {
        started();
        ctx.signal.addEventListener("abort", () => {
          reason = ctx.signal.reason;
          resolve({});
        });
      }),
  });
  const pending = stub.echo({}).catch((e: unknown) => e);
  await running;
  await client.close();
  t.ok(isCode(await pending, Code.Unavailable), "the client's own call fails Unavailable");
  await sleep(10);
  t.ok(reason instanceof TtrpcError && reason.code === Code.Canceled, "the handler sees Canceled");
  t.equal(server.connectionCount, 0);

  const other = serveInMemory(server);
  const closed = new Promise<void>((resolve) => other.onClose(() => resolve()));
  await server.close();
  await closed;
  t.equal(other.connected, false);
});

t.test("memoryPair ends work with new Client() and serveConnection() directly", async (t) => {
  const server = new Server().register(TestService, {
    echo: (req: Msg) => req,
  } as unknown as ServiceImpl<typeof TestService>);
  t.teardown(() => server.close());
  const [a, b] = memoryPair();
  server.serveConnection(b);
  const client = new Client(a);
  t.teardown(() => client.close());
  t.same(await client.service(TestService).echo({ text: "direct" }), { text: "direct" });
  // Bytes written by one end are a copy on the other: neither can change what the other holds.
  const [x, y] = memoryPair();
  const sent = Buffer.from("abc");
  const got = new Promise<Buffer>((resolve) => y.once("data", resolve));
  x.write(sent);
  sent[0] = 0x7a;
  t.equal((await got).toString(), "abc");
  x.destroy();
  y.destroy();
});
