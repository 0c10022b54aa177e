// Frame-level fuzzing of a live tsruncd over its socket, as frames-shim.test.ts does for the
// shim: hostile byte streams judged by the connection model with the daemon's profile
// (lib/daemon-profile.ts), directed cases, hundreds of connections at once with partial frames,
// and Subscribe streams opened and abandoned by the hundred. After each part the daemon must be
// healthy (lib/daemon-live.ts): alive, answering on a new connection, the sentinel container
// RUNNING and the sentinel connection's pending Wait untouched, fds back to the baseline, RSS
// bounded. Saved failures (test/fuzz/regressions/daemon-frames/) are replayed first.
import * as path from "node:path";
import { EventsService, type eventsapi } from "@tsrunc/protocol/daemon";
import { encodeRequest } from "@tsrunc/ttrpc";
import t from "tap";
import { campaign, executed, fileBudgetMs, loadRegressions } from "./lib/campaign.js";
import { liveDaemon, NS_KEY } from "./lib/daemon-live.js";
import { daemonCalls, daemonProfile, listProbe } from "./lib/daemon-profile.js";
import { type Case, caseArb } from "./lib/frame-arbs.js";
import { runCase } from "./lib/frame-runner.js";
import { snapshot } from "./lib/health.js";
import { F_REMOTE_CLOSED, MAX_DATA, RawConn, rawFrame, T_DATA, T_REQUEST } from "./lib/wire.js";

const BUDGET = fileBudgetMs(8000);
t.setTimeout(Math.max(180_000, BUDGET * 3));

const LIST = (id: number, flags = 0) =>
  rawFrame(id, T_REQUEST, flags, encodeRequest({ ...listProbe.call, payload: new Uint8Array(0) }));

t.test("hostile byte streams against a live tsruncd", async (t) => {
  const d = await liveDaemon(t);
  t.same(await d.health(), [], "healthy before");
  const sock = d.env.address;

  for (const r of loadRegressions<Case>("daemon-frames"))
    t.same(
      (await runCase(sock, daemonProfile(), listProbe, r.input, { answerMs: 3000 })).problems,
      [],
      `regression ${path.basename(r.file)}`,
    );

  await campaign(t, {
    target: "daemon-frames",
    arb: caseArb(daemonCalls),
    ms: BUDGET * 0.7,
    run: async (c) => (await runCase(sock, daemonProfile(), listProbe, c, { answerMs: 3000 })).problems,
    after: () => (snapshot(d.pid).alive ? undefined : "tsruncd died"),
  });
  t.same(await d.health(), [], "healthy after the campaign");

  // Directed: every length class, ids, types.
  for (const [what, bytes, expect] of [
    ["length 2^32-1, no body", rawFrame(1, T_REQUEST, 0, new Uint8Array(0), 0xffffffff), "answer"],
    [
      "length 4 MiB + 1 with its body",
      Buffer.concat([
        rawFrame(1, T_REQUEST, 0, new Uint8Array(0), MAX_DATA + 1),
        Buffer.alloc(MAX_DATA + 1),
        LIST(3),
      ]),
      "answer2",
    ],
    ["flags 0xff on a request", LIST(1, 0xff), "answer"],
    ["stream id 0", LIST(0), "close"],
    ["even stream id", LIST(2), "close"],
    ["message type 7", rawFrame(1, 7, 0), "close"],
    ["reused stream id", Buffer.concat([LIST(1), LIST(1)]), "close"],
    ["data on a never-opened stream", rawFrame(9, T_DATA, 0), "close"],
  ] as const) {
    const c = await RawConn.open(sock);
    c.socket.write(bytes);
    if (expect === "close") t.ok(await c.whenClosed(3000), `${what}: connection closed`);
    else {
      const n = expect === "answer2" ? 2 : 1;
      await c.until(() => c.frames.length >= n, 3000);
      t.equal(c.frames.length, n, `${what}: answered`);
      t.notOk(c.closed, `${what}: connection kept`);
    }
    c.destroy();
  }

  // Hundreds of connections at once: complete requests byte by byte then a partial one, or a
  // partial header, all abandoned.
  const conns = await Promise.all(Array.from({ length: 300 }, () => RawConn.open(sock)));
  await Promise.all(
    conns.map(async (c, i) => {
      const bytes = Buffer.concat([LIST(1), LIST(3)]);
      const cut = i % 2 === 0 ? bytes.length - 3 : 1 + (i % 9);
      for (let j = 0; j < cut; j++) {
        c.socket.write(bytes.subarray(j, j + 1));
        if (j % 8 === 0) await new Promise((r) => setImmediate(r));
      }
    }),
  );
  await Promise.all(
    conns.filter((_, i) => i % 2 === 0).map((c) => c.until(() => c.frames.length >= 1, 5000)),
  );
  t.ok(
    conns.every((c, i) => c.frames.length === (i % 2 === 0 ? 1 : 0) && !c.closed),
    "300 connections at once: complete requests answered, partial ones waiting, none closed",
  );
  const peak = snapshot(d.pid);
  t.ok(peak.fds >= d.baseline.fds + 250, `the daemon held them all (${peak.fds} fds)`);
  for (const c of conns) c.destroy();
  t.same(await d.health(), [], "healthy after 300 abandoned connections");

  // Subscribe streams opened and abandoned: 200 on raw connections (destroyed), 200 on one
  // typed connection (aborted), 50 whose client closes its side mid-stream.
  const sub = (id: number, filters: string[] = []) =>
    rawFrame(
      id,
      T_REQUEST,
      0,
      encodeRequest({
        service: EventsService.name,
        method: "Subscribe",
        payload: EventsService.methods.subscribe.requestType.encode({ filters }),
        metadata: [{ key: NS_KEY, value: d.namespace }],
      }),
    );
  const raws = await Promise.all(Array.from({ length: 200 }, () => RawConn.open(sock)));
  for (const [i, c] of raws.entries()) c.socket.write(Buffer.concat([sub(1), sub(3, [`topic=="/x/${i}"`])]));
  const typed = await d.connect();
  const aborts = Array.from({ length: 200 }, () => new AbortController());
  const drains = aborts.map(async (a) => {
    try {
      for await (const _ of typed.events.subscribe({ filters: [] }, { signal: a.signal })) {
        // nothing comes: no event is published meanwhile
      }
    } catch {
      // aborted
    }
  });
  const halfClosed = await Promise.all(Array.from({ length: 50 }, () => RawConn.open(sock)));
  for (const c of halfClosed) {
    c.socket.write(sub(1));
    c.socket.end();
  }
  await new Promise((r) => setTimeout(r, 300));
  for (const c of raws) c.destroy();
  for (const a of aborts) a.abort();
  await Promise.all(drains);
  for (const c of halfClosed) c.destroy();

  // A fresh subscriber still gets what is published, and nothing is owed to the abandoned ones.
  const fresh = await d.connect();
  const got: eventsapi.Envelope[] = [];
  const ac = new AbortController();
  const reading = (async () => {
    for await (const e of fresh.events.subscribe(
      { filters: ['topic=="/fuzz/after"'] },
      { signal: ac.signal },
    )) {
      got.push(e);
      break;
    }
  })().catch(() => {});
  await new Promise((r) => setTimeout(r, 100));
  await fresh.events.publish(
    { topic: "/fuzz/after", event: { typeUrl: "types.containerd.io/x", value: new Uint8Array([1]) } },
    fresh.o(),
  );
  await Promise.race([reading, new Promise((r) => setTimeout(r, 3000))]);
  ac.abort();
  t.equal(got.length, 1, "a fresh subscriber gets a published event");
  await fresh.client.close();
  await typed.client.close();
  t.same(await d.health(), [], "healthy after 450 abandoned Subscribe streams");

  // Frames of the Subscribe stream itself: data on it (a server stream) is a violation.
  const c = await RawConn.open(sock);
  c.socket.write(Buffer.concat([sub(1), rawFrame(1, T_DATA, F_REMOTE_CLOSED, Buffer.from("x"))]));
  t.ok(await c.whenClosed(3000), "data on a Subscribe stream closes the connection");
  c.destroy();
  t.same(await d.health(), [], "healthy at the end");
});

t.teardown(() => {
  for (const [k, v] of Object.entries(executed)) t.comment(`inputs executed: ${k} ${v}`);
});
