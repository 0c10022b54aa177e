// Interceptors on both sides: their order, errors passing through them in both directions,
// metadata added by a client interceptor and read by a server one, and streaming calls.

import { join } from "node:path";
import t from "tap";
import { Client } from "./client.js";
import type { ClientCall, ClientInterceptor, ServerCall, ServerInterceptor } from "./interceptor.js";
import { serveInMemory } from "./memory-transport.js";
import { Server, type ServerOptions, type ServiceImpl } from "./server.js";
import { Code, errdefs, isCode, TtrpcError } from "./status.js";
import { type Msg, sleep, type Teardown, TestService, tempDir } from "./test-support.js";

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const m of it) out.push(m);
  return out;
}

const impl: Partial<ServiceImpl<typeof TestService>> = {
  echo: (req, ctx) => {
    if (req.fail !== undefined) throw new TtrpcError(req.fail, `failed as asked: ${req.text}`);
    return { text: `echo ${req.text}`, n: ctx.metadata["x-tenant"]?.length };
  },
  count: async function* (req) {
    for (let n = 0; n < req.n!; n++) {
      if (req.fail !== undefined && n === 2) throw new TtrpcError(req.fail, "stream failed");
      yield { n };
    }
  },
  sum: async (reqs) => {
    let n = 0;
    for await (const r of reqs) n += r.n ?? 0;
    return { n };
  },
  chat: async function* (reqs, ctx) {
    for await (const r of reqs) yield { text: `${ctx.metadata["containerd-namespace"]?.[0]}: ${r.text}` };
  },
};

function setup(
  t: Teardown,
  server: ServerOptions & { interceptors?: ServerInterceptor[] },
  client: ClientInterceptor[] = [],
) {
  const s = new Server(server);
  s.register(TestService, impl as ServiceImpl<typeof TestService>);
  t.teardown(() => s.close());
  const c = serveInMemory(s, { interceptors: client });
  t.teardown(() => c.close());
  return { server: s, client: c, stub: c.service(TestService) };
}

/** An interceptor that logs "name>" on the way in and "<name" on the way out. */
function tracer<C>(log: string[], name: string) {
  return (next: (call: C) => Promise<unknown>) => async (call: C) => {
    log.push(`${name}>`);
    try {
      return await next(call);
    } finally {
      log.push(`<${name}`);
    }
  };
}

t.test("interceptors run in order, the first outermost, on both sides; use() adds inner ones", async (t) => {
  const log: string[] = [];
  const { server, stub } = setup(
    t,
    { interceptors: [tracer<ServerCall>(log, "s1"), tracer<ServerCall>(log, "s2")] },
    [tracer<ClientCall>(log, "c1"), tracer<ClientCall>(log, "c2")],
  );
  server.use(tracer<ServerCall>(log, "s3"));
  t.same(await stub.echo({ text: "x" }), { text: "echo x" });
  t.same(log, ["c1>", "c2>", "s1>", "s2>", "s3>", "<s3", "<s2", "<s1", "<c2", "<c1"]);
});

t.test("a server interceptor sees the call and may replace request and response", async (t) => {
  let seen: ServerCall | undefined;
  const { stub } = setup(t, {
    interceptors: [
      (next) => async (call) => {
        seen = call;
        const res = (await next({ ...call, request: { text: `${(call.request as Msg).text}!` } })) as Msg;
        return { ...res, text: `${res.text}?` };
      },
    ],
  });
  t.same(await stub.echo({ text: "hi" }), { text: "echo hi!?" });
  t.equal(seen?.service, TestService.name);
  t.equal(seen?.method, "Echo");
  t.equal(seen?.kind, "unary");
  t.same(seen?.request, { text: "hi" });
  t.equal(seen?.ctx.method, "Echo");
});

t.test("errors: refused by a server interceptor (PermissionDenied, code 7), mapped, or plain", async (t) => {
  let handled = 0;
  const { stub } = setup(t, {
    interceptors: [
      (next) => (call) => {
        const text = (call.request as Msg | undefined)?.text;
        if (text === "intruder") throw new TtrpcError(Code.PermissionDenied, "not you");
        if (text === "plain") return Promise.reject(new Error("plain failure"));
        handled++;
        return next(call).catch((err: unknown) => {
          // Map the handler's NotFound to FailedPrecondition, keep anything else.
          if (isCode(err, Code.NotFound))
            throw errdefs.failedPrecondition(`mapped: ${(err as Error).message}`);
          throw err;
        });
      },
    ],
  });
  const denied = await stub.echo({ text: "intruder" }).catch((e: unknown) => e);
  t.ok(denied instanceof TtrpcError);
  t.equal((denied as TtrpcError).code, 7);
  t.equal((denied as TtrpcError).message, "not you");
  t.equal(handled, 0, "the handler never ran");

  const plain = await stub.echo({ text: "plain" }).catch((e: unknown) => e);
  t.ok(isCode(plain, Code.Unknown), "an error without a code is Unknown");

  const mapped = await stub.echo({ text: "m", fail: Code.NotFound }).catch((e: unknown) => e);
  t.ok(isCode(mapped, Code.FailedPrecondition));
  t.match((mapped as Error).message, /mapped: failed as asked: m/);

  const kept = await stub.echo({ text: "k", fail: Code.AlreadyExists }).catch((e: unknown) => e);
  t.ok(isCode(kept, Code.AlreadyExists), "a handler's error passes through unchanged");
  t.same(await stub.echo({ text: "ok" }), { text: "echo ok" }, "the connection carries on");
});

t.test("a client interceptor adds metadata that a server interceptor reads and replaces", async (t) => {
  const withNamespace: ClientInterceptor = (next) => (call) =>
    next({
      ...call,
      options: { ...call.options, metadata: { ...call.options.metadata, "containerd-namespace": "k8s.io" } },
    });
  const seen: string[] = [];
  const requireNamespace: ServerInterceptor = (next) => (call) => {
    const ns = call.ctx.metadata["containerd-namespace"]?.[0];
    if (ns === undefined) throw new TtrpcError(Code.FailedPrecondition, "namespace required");
    seen.push(ns);
    call.ctx.metadata = { ...call.ctx.metadata, "x-tenant": [ns, "extra"] };
    return next(call);
  };
  // Over a real unix socket, through Client.connect's options.
  const dir = tempDir(t);
  const path = join(dir, "s.sock");
  const server = new Server({ interceptors: [requireNamespace] });
  server.register(TestService, impl as ServiceImpl<typeof TestService>);
  await server.listen(path);
  t.teardown(() => server.close());
  const client = await Client.connect(path, { interceptors: [withNamespace] });
  t.teardown(() => client.close());
  const res = await client.service(TestService).echo({ text: "a" }, { metadata: { "x-other": "1" } });
  t.same(res, { text: "echo a", n: 2 }, "the handler saw the metadata the interceptor put in ctx");
  t.same(seen, ["k8s.io"]);

  const plain = await Client.connect(path);
  t.teardown(() => plain.close());
  const refused = await plain
    .service(TestService)
    .echo({ text: "b" })
    .catch((e: unknown) => e);
  t.ok(isCode(refused, Code.FailedPrecondition), "no namespace, refused");

  // Raw calls go through client interceptors too.
  const raw = await client.call(TestService.name, "Echo", Buffer.from(JSON.stringify({ text: "raw" })));
  t.same(JSON.parse(Buffer.from(raw).toString()), { text: "echo raw", n: 2 });
});

t.test("a client interceptor that throws fails the call before anything is sent", async (t) => {
  let calls = 0;
  const { stub, client } = setup(
    t,
    {
      interceptors: [
        (next) => (call) => {
          calls++;
          return next(call);
        },
      ],
    },
    [
      (next) => async (call) => {
        if ((call.request as Msg | undefined)?.text === "no")
          throw new TtrpcError(Code.Aborted, "stopped here");
        return next(call);
      },
    ],
  );
  const err = await stub.echo({ text: "no" }).catch((e: unknown) => e);
  t.ok(isCode(err, Code.Aborted));
  t.equal(calls, 0);
  t.equal(client.pending, 0);
  t.same(await stub.echo({ text: "yes" }), { text: "echo yes" });
  t.equal(calls, 1);
});

t.test("streaming calls go through interceptors on both sides", async (t) => {
  const server: { kind: string; request: unknown; streams: boolean; ended: string }[] = [];
  const client: { kind: string; ended: string }[] = [];
  const serverSide: ServerInterceptor = (next) => async (call) => {
    const entry = { kind: call.kind, request: call.request, streams: call.requests !== undefined, ended: "" };
    server.push(entry);
    try {
      const out = await next(call);
      entry.ended = "ok";
      return out;
    } catch (err) {
      entry.ended = `code ${(err as TtrpcError).code}`;
      throw err;
    }
  };
  // Async before next(): the stream opens only after this, and what was sent meanwhile follows.
  const clientSide: ClientInterceptor = (next) => async (call) => {
    const entry = { kind: call.kind, ended: "" };
    client.push(entry);
    await sleep(5);
    try {
      await next({ ...call, options: { ...call.options, metadata: { "containerd-namespace": "ns1" } } });
      entry.ended = "ok";
    } catch (err) {
      entry.ended = `code ${(err as TtrpcError).code}`;
      throw err;
    }
  };
  const { stub } = setup(t, { interceptors: [serverSide] }, [clientSide]);

  t.same(
    (await collect(stub.count({ n: 3 }))).map((m) => m.n),
    [0, 1, 2],
  );

  const sum = stub.sum();
  await Promise.all([sum.send({ n: 1 }), sum.send({ n: 2 })]);
  sum.closeSend();
  t.same(await sum.response, { n: 3 });

  const chat = stub.chat();
  void chat.send({ text: "first" });
  void chat.send({ text: "second" });
  chat.closeSend();
  t.same(await collect(chat), [{ text: "ns1: first" }, { text: "ns1: second" }]);

  // A stream that fails midway: the messages before it, then the error, seen by both interceptors.
  const got: number[] = [];
  const failed = await (async () => {
    for await (const m of stub.count({ n: 5, fail: Code.DataLoss })) got.push(m.n!);
  })().catch((e: unknown) => e);
  t.ok(isCode(failed, Code.DataLoss));
  t.same(got, [0, 1]);
  await sleep(10);

  t.same(
    server.map((e) => [e.kind, e.streams, e.ended]),
    [
      ["server", false, "ok"],
      ["client", true, "ok"],
      ["bidi", true, "ok"],
      ["server", false, `code ${Code.DataLoss}`],
    ],
  );
  t.same(server[0]?.request, { n: 3 });
  t.same(
    client.map((e) => [e.kind, e.ended]),
    [
      ["server", "ok"],
      ["client", "ok"],
      ["bidi", "ok"],
      ["server", `code ${Code.DataLoss}`],
    ],
  );
});

t.test(
  "a server interceptor may refuse a streaming call; a client one may refuse before it opens",
  async (t) => {
    const { stub } = setup(
      t,
      {
        interceptors: [
          (next) => (call) => {
            if (call.kind === "bidi") throw new TtrpcError(Code.PermissionDenied, "no chatting");
            return next(call);
          },
        ],
      },
      [
        (next) => (call) => {
          if (call.kind === "client")
            return Promise.reject(new TtrpcError(Code.Unauthenticated, "who are you"));
          return next(call);
        },
      ],
    );
    const chat = stub.chat();
    const refused = await collect(chat).catch((e: unknown) => e);
    t.ok(isCode(refused, Code.PermissionDenied));

    const sum = stub.sum();
    const sent = await sum.send({ n: 1 }).catch((e: unknown) => e);
    t.ok(isCode(sent, Code.Unauthenticated), "send on a refused stream rejects");
    t.ok(isCode(await sum.response.catch((e: unknown) => e), Code.Unauthenticated));
    sum.closeSend();

    t.same(
      (await collect(stub.count({ n: 2 }))).map((m) => m.n),
      [0, 1],
    );
  },
);

t.test("an interceptor that drops next()'s promise causes no unhandled rejection", async (t) => {
  const { stub } = setup(
    t,
    {
      interceptors: [
        (next) => async (call) => {
          const text = (call.request as Msg | undefined)?.text;
          if (text === "drop") throw new TtrpcError(Code.PermissionDenied, "refused");
          if (call.kind !== "unary") return next(call);
          // Answers at once; the handler's failure that follows is nobody's to handle.
          void next(call);
          return { text: "early" };
        },
      ],
    },
    [
      (next) => async (call) => {
        if ((call.request as Msg | undefined)?.text !== "drop" && call.kind === "unary") return next(call);
        // Sends the call but does not wait for it; its failure is nobody's to handle either.
        void next(call);
        await sleep(20);
        return call.kind === "unary" ? { text: "cached" } : undefined;
      },
    ],
  );
  t.same(await stub.echo({ text: "x", fail: Code.Internal }), { text: "early" });
  t.same(await stub.echo({ text: "drop" }), { text: "cached" });
  const got: number[] = [];
  const err = await (async () => {
    for await (const m of stub.count({ n: 4, fail: Code.DataLoss })) got.push(m.n!);
  })().catch((e: unknown) => e);
  t.ok(isCode(err, Code.DataLoss), "the caller still sees the stream's error");
  t.same(got, [0, 1]);
  await sleep(30);
});

t.test("without interceptors nothing changes; ctx is the CallContext handlers always got", async (t) => {
  let ctxSeen: unknown;
  let ctxInInterceptor: unknown;
  const s = new Server({
    interceptors: [
      (next) => (call) => {
        ctxInInterceptor = call.ctx;
        return next(call);
      },
    ],
  });
  s.register(TestService, {
    echo: (req: Msg, ctx: unknown) => {
      ctxSeen = ctx;
      return req;
    },
  } as unknown as ServiceImpl<typeof TestService>);
  t.teardown(() => s.close());
  const c = serveInMemory(s);
  t.teardown(() => c.close());
  t.same(await c.service(TestService).echo({ text: "same" }), { text: "same" });
  t.equal(ctxSeen, ctxInInterceptor);
});

t.test("a client interceptor that opens a stream twice: the caller reads the first", async (t) => {
  let opened = 0;
  const { stub, client } = setup(t, {}, [
    (next) => async (call) => {
      if (call.kind === "unary") return next(call);
      const first = next(call);
      const second = next(call);
      opened += 2;
      await Promise.all([first, second]);
    },
  ]);
  t.same(
    (await collect(stub.count({ n: 3 }))).map((m) => m.n),
    [0, 1, 2],
  );
  t.equal(opened, 2);
  await sleep(20);
  t.equal(client.pending, 0, "the unread second stream ran to its end");
});
