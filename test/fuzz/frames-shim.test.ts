// Frame-level fuzzing of the live shim binary over its socket: the same hostile byte streams as
// against the in-process server, judged by the same connection model with the Task service's
// profile; then hundreds of connections at once, partial frames abandoned byte by byte, and the
// shim's health (alive, sentinel container and connection untouched, fds, zombies, RSS).
import { encodeRequest } from "@tsrunc/ttrpc";
import t from "tap";
import { campaign, executed, fileBudgetMs } from "./lib/campaign.js";
import { caseArb } from "./lib/frame-arbs.js";
import { runCase } from "./lib/frame-runner.js";
import { snapshot } from "./lib/health.js";
import { liveShim } from "./lib/live-shim.js";
import { connectProbe, shimCalls, shimProfile, TASK } from "./lib/shim-profile.js";
import { MAX_DATA, RawConn, rawFrame, T_DATA, T_REQUEST } from "./lib/wire.js";

const BUDGET = fileBudgetMs(10000);

t.test("hostile byte streams against the live shim", async (t) => {
  const shim = await liveShim(t);
  t.same(await shim.health(), [], "healthy before");
  shim.baseline = snapshot(shim.pid);
  await campaign(t, {
    target: "frames-shim",
    arb: caseArb(shimCalls),
    ms: BUDGET * 0.75,
    run: async (c) => (await runCase(shim.sock, shimProfile(), connectProbe, c, { answerMs: 3000 })).problems,
    after: () => (snapshot(shim.pid).alive ? undefined : "the shim died"),
  });
  t.same(await shim.health(), [], "healthy after the campaign");

  // Directed: every length class, ids, types; then hundreds of connections at once.
  const state = (id: number, flags = 0) =>
    rawFrame(
      id,
      T_REQUEST,
      flags,
      encodeRequest({ service: TASK, method: "State", payload: Buffer.from([10, 1, 0x78]) }),
    );
  for (const [what, bytes, expect] of [
    ["length 2^32-1, no body", rawFrame(1, T_REQUEST, 0, new Uint8Array(0), 0xffffffff), "answer"],
    [
      "length 4 MiB + 1 with its body",
      Buffer.concat([
        rawFrame(1, T_REQUEST, 0, new Uint8Array(0), MAX_DATA + 1),
        Buffer.alloc(MAX_DATA + 1),
        state(3),
      ]),
      "answer2",
    ],
    ["flags 0xff on a request", state(1, 0xff), "answer"],
    ["stream id 0", state(0), "close"],
    ["even stream id", state(2), "close"],
    ["message type 7", rawFrame(1, 7, 0), "close"],
    [
      "data on a unary stream (same write)",
      Buffer.concat([state(1), rawFrame(1, T_DATA, 0, Buffer.from("x"))]),
      "close",
    ],
    ["reused stream id", Buffer.concat([state(1), state(1)]), "close"],
    ["data on a never-opened stream", rawFrame(9, T_DATA, 0), "close"],
  ] as const) {
    const c = await RawConn.open(shim.sock);
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

  const conns = await Promise.all(Array.from({ length: 300 }, () => RawConn.open(shim.sock)));
  await Promise.all(
    conns.map(async (c, i) => {
      const bytes = Buffer.concat([state(1), state(3)]);
      // Even: a complete request byte by byte, then a partial one, abandoned. Odd: a partial header.
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
  const peak = snapshot(shim.pid);
  t.ok(peak.fds >= shim.baseline.fds + 250, `the shim held them all (${peak.fds} fds)`);
  for (const c of conns) c.destroy();
  t.same(await shim.health(), [], "healthy after 300 abandoned connections");
});

t.teardown(() => {
  for (const [k, v] of Object.entries(executed)) t.comment(`inputs executed: ${k} ${v}`);
});
