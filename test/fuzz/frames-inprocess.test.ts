// Frame-level fuzzing of our ttrpc Server in this process, with a trivial service (fuzz-service):
// hostile byte streams on fresh connections, judged against the connection model, then the
// server's health: other connections undisturbed, no connection, handler or fd left over.
import * as path from "node:path";
import { Client, encodeRequest } from "@tsrunc/ttrpc";
import t from "tap";
import { tempRoot } from "../helpers/temp-root.js";
import { campaign, executed, fileBudgetMs } from "./lib/campaign.js";
import { caseArb } from "./lib/frame-arbs.js";
import { runCase } from "./lib/frame-runner.js";
import { echoProbe, FuzzService, fuzzCalls, fuzzProfile, fuzzServer } from "./lib/fuzz-service.js";
import { settle, snapshot } from "./lib/health.js";
import type { TapTest } from "./lib/tap.js";
import { MAX_DATA, RawConn, rawFrame, T_DATA, T_REQUEST } from "./lib/wire.js";

const BUDGET = fileBudgetMs(9000);

async function setup(t: TapTest, maxStreams?: number) {
  const root = tempRoot(t, { tmpfs: false });
  const sock = path.join(root.path, "fuzz.sock");
  const { server, stats } = fuzzServer(maxStreams ? { maxStreamsPerConnection: maxStreams } : {});
  await server.listen(sock);
  root.scope.sockets.add(sock);
  t.teardown(() => server.close());
  return { server, stats, sock };
}

/** A connection that stays open through a campaign with a call in flight on each stream kind. */
async function bystander(sock: string) {
  const client = await Client.connect(sock);
  const svc = client.service(FuzzService);
  const hang = svc.hang(Buffer.from("x"));
  let hangSettled = false;
  hang.then(
    () => {
      hangSettled = true;
    },
    () => {
      hangSettled = true;
    },
  );
  const chat = svc.chat();
  const echoes = chat[Symbol.asyncIterator]();
  await chat.send(Buffer.from("before"));
  const first = await echoes.next();
  return {
    client,
    first,
    async check(): Promise<string[]> {
      const problems: string[] = [];
      if (hangSettled) problems.push("the bystander's Hang call ended during the campaign");
      const e = await svc.echo(Buffer.from("after"), { timeoutMs: 3000 }).catch((err: Error) => err);
      if (!(e instanceof Uint8Array) || Buffer.from(e).toString() !== "after")
        problems.push(`bystander echo failed: ${String(e)}`);
      await chat.send(Buffer.from("after"));
      const n = await echoes.next();
      if (n.done || Buffer.from(n.value).toString() !== "after")
        problems.push("bystander chat stream broken");
      chat.closeSend();
      await client.close();
      return problems;
    },
  };
}

async function healthy(
  t: TapTest,
  env: Awaited<ReturnType<typeof setup>>,
  fdBase: number,
  rssBase: number,
  what: string,
) {
  const drained = await settle(process.pid, () => env.server.connectionCount === 0, 5000);
  t.ok(drained.ok, `${what}: every connection closed (${env.server.connectionCount} left)`);
  t.equal(env.stats.hanging, 0, `${what}: no Hang handler left waiting`);
  t.equal(env.stats.streaming, 0, `${what}: no streaming handler left running`);
  const fds = await settle(process.pid, (s) => s.fds <= fdBase, 5000);
  t.ok(fds.ok, `${what}: fds back to baseline (${fds.snap.fds} vs ${fdBase})`);
  const rssGrowthMiB = (fds.snap.rssKiB - rssBase) / 1024;
  t.ok(rssGrowthMiB < 256, `${what}: RSS growth bounded (${rssGrowthMiB.toFixed(1)} MiB)`);
  const c = await Client.connect(env.sock);
  const r = await c.service(FuzzService).echo(Buffer.from("alive"), { timeoutMs: 3000 });
  t.equal(Buffer.from(r).toString(), "alive", `${what}: a new connection is served`);
  await c.close();
}

t.test("hostile byte streams against the in-process server", async (t) => {
  const env = await setup(t);
  const fdBase = snapshot(process.pid).fds;
  const rssBase = snapshot(process.pid).rssKiB;
  const by = await bystander(env.sock);
  t.equal(Buffer.from(by.first.value ?? []).toString(), "before");
  await campaign(t, {
    target: "frames-inprocess",
    arb: caseArb(fuzzCalls),
    ms: BUDGET * 0.7,
    run: async (c) => (await runCase(env.sock, fuzzProfile(), echoProbe, c)).problems,
  });
  t.same(await by.check(), [], "the bystander connection was undisturbed");
  await healthy(t, env, fdBase, rssBase, "after the campaign");
});

t.test("directed: lengths, ids, types, flags", async (t) => {
  const env = await setup(t);
  const base = snapshot(process.pid);
  const echo = (id: number, flags = 0) =>
    rawFrame(
      id,
      T_REQUEST,
      flags,
      encodeRequest({ service: FuzzService.name, method: "Echo", payload: Buffer.from("e") }),
    );
  // Every declared length class with no body: the server waits (no answer, no close) until we go.
  for (const len of [MAX_DATA, MAX_DATA + 1, 0x7fffffff, 0x80000000, 0xffffffff]) {
    const c = await RawConn.open(env.sock);
    c.socket.write(rawFrame(1, T_REQUEST, 0, new Uint8Array(0), len));
    await new Promise((r) => setTimeout(r, 30));
    if (len > MAX_DATA) {
      await c.until(() => c.frames.length > 0, 2000);
      t.equal(c.frames[0]?.id, 1, `length ${len}: ResourceExhausted answered on its stream`);
    } else {
      t.equal(c.frames.length, 0, `length ${len}: waits for the body`);
    }
    t.notOk(c.closed, `length ${len}: connection kept`);
    c.destroy();
  }
  // Non-zero flags on a unary request are ignored; unknown types close; even/zero ids close.
  for (const [what, bytes, closes] of [
    ["flags 0xff on a unary request", echo(1, 0xff), false],
    ["stream id 0", echo(0), true],
    ["even stream id", echo(2), true],
    ["message type 0", rawFrame(1, 0, 0), true],
    ["message type 4", rawFrame(1, 4, 0), true],
    ["message type 255", rawFrame(1, 255, 0, Buffer.alloc(4)), true],
    ["data on a never-opened stream", rawFrame(5, T_DATA, 0, Buffer.from("x")), true],
  ] as const) {
    const c = await RawConn.open(env.sock);
    c.socket.write(bytes);
    if (closes) t.ok(await c.whenClosed(2000), `${what}: connection closed`);
    else {
      await c.until(() => c.frames.length > 0, 2000);
      t.equal(c.frames.length, 1, `${what}: answered`);
      t.notOk(c.closed, `${what}: connection kept`);
    }
    c.destroy();
  }
  await healthy(t, env, base.fds, base.rssKiB, "directed");
});

t.test("partial frames one byte at a time, then abandoned, on hundreds of connections at once", async (t) => {
  const env = await setup(t);
  const fdBase = snapshot(process.pid).fds;
  const rssBase = snapshot(process.pid).rssKiB;
  const req = (method: string) =>
    rawFrame(
      1,
      T_REQUEST,
      0,
      encodeRequest({ service: FuzzService.name, method, payload: Buffer.from("p") }),
    );
  const conns = await Promise.all(Array.from({ length: 300 }, () => RawConn.open(env.sock)));
  const held = await settle(process.pid, () => env.server.connectionCount === 300, 5000);
  t.ok(held.ok, `the server holds 300 connections at once (${env.server.connectionCount})`);
  await Promise.all(
    conns.map(async (c, i) => {
      const kind = i % 4;
      const whole = kind === 0 ? req("Echo") : kind === 1 ? req("Hang") : req("Sum");
      // Byte by byte up to a cut inside the frame (kind 3: the whole Echo frame, then a partial one).
      const bytes = kind === 3 ? Buffer.concat([req("Echo"), req("Echo").subarray(0, 7)]) : whole;
      const cut = kind === 0 ? 5 : bytes.length - (kind === 3 ? 0 : 1);
      for (let j = 0; j < cut; j++) {
        c.socket.write(bytes.subarray(j, j + 1));
        if (j % 4 === 0) await new Promise((r) => setImmediate(r));
      }
    }),
  );
  await new Promise((r) => setTimeout(r, 200));
  const answeredEarly = conns.filter((c, i) => i % 4 === 3 && c.frames.length === 1).length;
  t.equal(answeredEarly, 75, "complete frames sent byte by byte were answered");
  t.ok(
    conns.every((c, i) => i % 4 === 3 || c.frames.length === 0),
    "partial frames got no answer",
  );
  t.ok(
    conns.every((c) => !c.closed),
    "no partial-frame connection was closed by the server",
  );
  t.ok(env.stats.hanging === 0, "no Hang handler started from a partial frame");
  for (const c of conns) c.destroy();
  await healthy(t, env, fdBase, rssBase, "after 300 abandoned connections");
});

t.test(
  "stream cap: more open calls than allowed are answered ResourceExhausted, the connection lives",
  async (t) => {
    const env = await setup(t, 8);
    const c = await RawConn.open(env.sock);
    const frames: Buffer[] = [];
    for (let i = 0; i < 12; i++)
      frames.push(
        rawFrame(2 * i + 1, T_REQUEST, 0, encodeRequest({ service: FuzzService.name, method: "Hang" })),
      );
    c.socket.write(Buffer.concat(frames));
    await c.until(() => c.frames.length >= 4, 2000);
    t.same(
      c.frames.map((f) => f.id),
      [17, 19, 21, 23],
      "the calls over the cap were refused",
    );
    t.equal(env.stats.hanging, 8);
    c.destroy();
    await settle(process.pid, () => env.stats.hanging === 0, 2000);
    t.equal(env.stats.hanging, 0, "the handlers ended with the connection");
  },
);

t.teardown(() => {
  for (const [k, v] of Object.entries(executed)) t.comment(`inputs executed: ${k} ${v}`);
});
