// Coverage-guided fuzzing of the frame decoder and the request dispatcher, in this process.
//
// jazzer.js does not run here (its 4.x prebuilt addon needs glibc 2.38, Debian bookworm has
// 2.36; 2.x fetches its addon or LLVM's compiler-rt from GitHub at install), so this uses
// lib/covfuzz.ts — V8's own block coverage read through the inspector after every input — plus
// fast-check properties with large run counts:
// - decoder: FrameDecoder fed any bytes cut anywhere must hand out exactly what the reference
//   parser (lib/wire.ts) sees, and never throw;
// - dispatcher: our Server with the fuzz service, fed any bytes over an in-memory connection,
//   must answer as the connection model predicts (lib/conn-model.ts);
// - task dispatcher: the shim's real Task service behind our Server, fed any payload for any
//   method, must answer with a proper status (never a JS error surfacing as Unknown).
// First: block coverage must be on before the code under test first runs.

import { TaskService } from "@tsrunc/protocol";
import { decodeResponse, encodeRequest, FrameDecoder } from "@tsrunc/ttrpc";
import fc from "fast-check";
import t from "tap";
import { tempRoot } from "../helpers/temp-root.js";
import { campaign, executed, fileBudgetMs, saveRegression, seedFromEnv } from "./lib/campaign.js";
import { answered, judge, predict } from "./lib/conn-model.js";
import { covfuzz } from "./lib/covfuzz.js";
import { ServerEnd, turns } from "./lib/duplex.js";
import { buildBytes, caseArb } from "./lib/frame-arbs.js";
import { echoProbe, fuzzCalls, fuzzProfile, fuzzServer } from "./lib/fuzz-service.js";
import { statusProblems, taskMethods } from "./lib/shim-profile.js";
import type { TapTest } from "./lib/tap.js";
import { inprocTask } from "./lib/task-inproc.js";
import { HEADER, MAX_DATA, RefParser, rawFrame, T_DATA, T_REQUEST, type WireEvent } from "./lib/wire.js";

const BUDGET = fileBudgetMs(9000);

// ---------------------------------------------------------------------------------------------
// decoder

/** Problems when FrameDecoder, fed `bytes` in the given pieces, disagrees with the reference. */
export function decoderProblems(bytes: Uint8Array, cuts: number[]): string[] {
  const got: WireEvent[] = [];
  let err: string | undefined;
  const dec = new FrameDecoder({
    frame: (id, type, flags, data) => got.push({ kind: "frame", id, type, flags, data: Buffer.from(data) }),
    oversize: (id, type, flags, length) => got.push({ kind: "oversize", id, type, flags, length }),
    protocolError: (e) => {
      err = e.message;
      got.push({ kind: "badtype", id: 0, type: 0, flags: 0, length: 0 });
    },
  });
  const ref = new RefParser();
  const want: WireEvent[] = [];
  let at = 0;
  try {
    for (const c of [...cuts, bytes.length]) {
      const end = Math.max(at, Math.min(bytes.length, c));
      dec.push(Buffer.from(bytes.subarray(at, end)));
      ref.push(bytes.subarray(at, end), want);
      at = end;
    }
  } catch (e) {
    return [`decoder threw: ${String(e)}`];
  }
  const norm = (e: WireEvent) =>
    e.kind === "frame"
      ? `frame ${e.id} ${e.type} ${e.flags} ${e.data.toString("hex")}`
      : e.kind === "oversize"
        ? `oversize ${e.id} ${e.type} ${e.flags} ${e.length}`
        : "badtype";
  const a = got.map(norm);
  const b = want.map(norm);
  const problems: string[] = [];
  if (a.join("\n") !== b.join("\n"))
    problems.push(`decoder events differ:\n got ${a.join("; ")}\nwant ${b.join("; ")}`);
  if (err !== undefined && !/unknown message type/.test(err))
    problems.push(`unexpected protocol error ${err}`);
  const tail = ref.tail;
  const mid = tail.state === "header" || tail.state === "body" || tail.state === "skip";
  if (tail.state !== "dead" && dec.midFrame !== mid)
    problems.push(`midFrame ${dec.midFrame}, reference ${tail.state}`);
  return problems;
}

/** Byte streams that look like frames often enough to get past the header. */
const frameish = fc
  .array(
    fc.oneof(
      fc
        .record({
          id: fc.nat(0xffffffff),
          type: fc.nat(4),
          flags: fc.nat(255),
          data: fc.uint8Array({ maxLength: 40 }),
        })
        .map((f) => rawFrame(f.id, f.type, f.flags, f.data)),
      fc
        .record({
          len: fc.oneof(fc.nat(64), fc.constantFrom(MAX_DATA, MAX_DATA + 1, 0xffffffff)),
          id: fc.nat(0xffffffff),
          type: fc.nat(3),
        })
        .map((f) => rawFrame(f.id, f.type, 0, new Uint8Array(0), f.len)),
      fc.uint8Array({ maxLength: 24 }),
    ),
    { maxLength: 12 },
  )
  .map((parts) => new Uint8Array(Buffer.concat(parts)));

t.test("decoder: differential against the reference parser (fast-check)", async (t) => {
  await campaign(t, {
    target: "decoder",
    arb: fc
      .tuple(frameish, fc.array(fc.nat(400), { maxLength: 8 }))
      .map(([bytes, cuts]) => ({ bytes, cuts: cuts.sort((a, b) => a - b) })),
    ms: BUDGET * 0.15,
    maxRuns: 1e9,
    run: ({ bytes, cuts }) => decoderProblems(bytes, cuts),
  });
});

const dictionary = [
  rawFrame(
    1,
    T_REQUEST,
    0,
    encodeRequest({ service: "tsrunc.fuzz.v1.Fuzz", method: "Echo", payload: Buffer.from("x") }),
  ),
  rawFrame(3, T_REQUEST, 0, encodeRequest({ service: "tsrunc.fuzz.v1.Fuzz", method: "Chat" })),
  rawFrame(
    5,
    T_REQUEST,
    1,
    encodeRequest({ service: "tsrunc.fuzz.v1.Fuzz", method: "Sum", payload: Buffer.from("s") }),
  ),
  rawFrame(
    7,
    T_REQUEST,
    0,
    encodeRequest({ service: "tsrunc.fuzz.v1.Fuzz", method: "Count", payload: Buffer.from([3]) }),
  ),
  rawFrame(9, T_REQUEST, 0, encodeRequest({ service: "tsrunc.fuzz.v1.Fuzz", method: "Hang" })),
  rawFrame(3, T_DATA, 0, Buffer.from("d")),
  rawFrame(3, T_DATA, 1, Buffer.from("e")),
  rawFrame(3, T_DATA, 5),
  rawFrame(1, T_REQUEST, 0, new Uint8Array(0), MAX_DATA + 1),
  Buffer.from("tsrunc.fuzz.v1.Fuzz"),
  Buffer.from([0x0a]),
  Buffer.from([0x12]),
  Buffer.from([0x1a]),
  Buffer.from([0x20]),
  Buffer.from([0x2a]),
];

t.test("decoder: coverage-guided", async (t) => {
  const res = await covfuzz({
    name: "decoder-cov",
    targets: ["/ttrpc/dist/frame-codec.js"],
    seeds: dictionary.map((d) => new Uint8Array(d)),
    dictionary,
    ms: BUDGET * 0.15,
    seed: seedFromEnv(),
    // The first byte picks the cut points: the same input always runs the same way.
    run: (input) => {
      const k = input[0] ?? 0;
      const body = input.subarray(1);
      const cuts = [k % 7, (k * 13) % (HEADER + 3), k % 3 === 0 ? body.length >> 1 : body.length].sort(
        (a, b) => a - b,
      );
      return decoderProblems(body, cuts);
    },
  });
  report(t, "decoder-cov", res);
});

// ---------------------------------------------------------------------------------------------
// dispatcher

async function dispatch(
  env: ReturnType<typeof fuzzServer>,
  bytes: Uint8Array,
  pieces: number,
): Promise<string[]> {
  const end = new ServerEnd();
  env.server.handleConnection(end.asSocket());
  const p = predict(bytes, fuzzProfile());
  const step = Math.max(1, Math.ceil(bytes.length / Math.max(1, pieces)));
  for (let at = 0; at < bytes.length; at += step) {
    end.feed(bytes.subarray(at, at + step));
    await turns(1);
  }
  const parse = () => {
    const ev = new RefParser().push(Buffer.concat(end.written));
    return ev.filter((e) => e.kind === "frame");
  };
  for (let i = 0; i < 30 && !end.destroyed && !answered(p, parse()); i++) await turns(1);
  let probeProblems: string[] = [];
  if (!end.destroyed && !p.mustClose && !p.mayClose && p.tail.state === "clean") {
    const top = Math.max(p.lastId, ...[...p.expected.keys()].filter((id) => id % 2 === 1));
    const id = top === 0 ? 1 : top + 2;
    if (id <= 0xffffffff) {
      end.feed(rawFrame(id, T_REQUEST, 0, encodeRequest(echoProbe.call)));
      for (let i = 0; i < 30 && !parse().some((f) => f.id === id); i++) await turns(1);
      const f = parse().find((fr) => fr.id === id);
      if (!f)
        probeProblems = [end.destroyed ? "closed instead of answering the probe" : "probe not answered"];
      else if (decodeResponse(f.data).status.code !== 0) probeProblems = ["probe failed"];
      const problems = judge(
        p,
        parse().filter((fr) => fr.id !== id),
        end.destroyed,
      );
      end.destroy();
      await turns(2);
      return [...problems, ...probeProblems];
    }
  }
  if (p.mustClose) for (let i = 0; i < 30 && !end.destroyed; i++) await turns(1);
  const problems = judge(p, parse(), end.destroyed);
  end.destroy();
  await turns(2);
  return problems;
}

t.test("dispatcher: model-checked (fast-check)", async (t) => {
  const env = fuzzServer();
  await campaign(t, {
    target: "dispatcher",
    arb: fc.tuple(caseArb(fuzzCalls), fc.nat(6)),
    ms: BUDGET * 0.2,
    run: ([c, pieces]) => dispatch(env, buildBytes(c.ops), pieces + 1),
  });
  await turns(5);
  t.equal(env.server.connectionCount, 0, "no connection left");
  t.equal(env.stats.hanging, 0, "no handler left waiting");
  t.equal(env.stats.streaming, 0, "no streaming handler left");
  await env.server.close();
});

t.test("dispatcher: coverage-guided", async (t) => {
  const env = fuzzServer();
  const res = await covfuzz({
    name: "dispatcher-cov",
    targets: ["/ttrpc/dist/"],
    seeds: dictionary.map((d) => new Uint8Array(d)),
    dictionary,
    ms: BUDGET * 0.2,
    seed: seedFromEnv(),
    run: (input) => dispatch(env, input.subarray(1), ((input[0] ?? 0) % 4) + 1),
  });
  report(t, "dispatcher-cov", res);
  await turns(5);
  t.equal(env.server.connectionCount, 0, "no connection left");
  t.equal(env.stats.hanging, 0, "no handler left waiting");
  await env.server.close();
});

// ---------------------------------------------------------------------------------------------
// the shim's Task service, in process

t.test("task dispatcher: the shim's Task service, coverage-guided", async (t) => {
  const root = tempRoot(t);
  const task = await inprocTask(root.path);
  const names = [...taskMethods.keys()];
  const sibling = `${root.path}/bundles/sib1`;
  const tokens = [
    task.bundle,
    sibling,
    `${root.path}/fifo`,
    "fz",
    "sib1",
    "../x",
    "/etc",
    "/proc/self/fd/0",
    "types.containerd.io/opencontainers/runtime-spec/1/Process",
    '{"args":["/bin/true"],"cwd":"/","user":{"uid":0,"gid":0}}',
  ].map((s) => Buffer.from(s));
  const seeds = names.map((m, i) =>
    Buffer.concat([
      Buffer.from([i]),
      taskMethods.get(m)!.requestType.encode({ id: "fz", bundle: task.bundle, execId: "e1", signal: 9 }),
    ]),
  );
  let conn: ServerEnd | undefined;
  const call = async (method: string, payload: Uint8Array): Promise<string[]> => {
    conn ??= (() => {
      const e = new ServerEnd();
      task.server.handleConnection(e.asSocket());
      return e;
    })();
    const e = conn;
    const before = e.written.length;
    callId += 2;
    const id = callId;
    e.feed(rawFrame(id, T_REQUEST, 0, encodeRequest({ service: TaskService.name, method, payload })));
    const deadline = Date.now() + 5000;
    for (;;) {
      const frames = new RefParser().push(Buffer.concat(e.written.slice(before)));
      const f = frames.find((x) => x.kind === "frame" && x.id === id);
      if (f && f.kind === "frame") {
        const st = decodeResponse(f.data).status;
        return statusProblems(method, st.code, st.message);
      }
      if (e.destroyed) {
        conn = undefined;
        return ["the connection was closed"];
      }
      if (Date.now() > deadline) return [`${method}: no answer in 5 s`];
      await new Promise((r) => setTimeout(r, 1));
    }
  };
  let callId = -1;
  const res = await covfuzz({
    name: "task-dispatch-cov",
    targets: ["/shim-runc-v2/dist/", "/protocol/dist/"],
    seeds,
    dictionary: tokens,
    ms: BUDGET * 0.3,
    seed: seedFromEnv(),
    run: (input) => {
      const method = names[(input[0] ?? 0) % names.length]!;
      if (callId > 0x7ffffff0) {
        conn?.destroy();
        conn = undefined;
        callId = -1;
      }
      return call(method, input.subarray(1));
    },
  });
  report(t, "task-dispatch-cov", res);
  conn?.destroy();
  await task.server.close();
});

function report(t: TapTest, name: string, res: Awaited<ReturnType<typeof covfuzz>>) {
  executed[name] = (executed[name] ?? 0) + res.execs;
  t.comment(
    `${name}: ${res.execs} inputs, corpus ${res.corpus.length}, ${res.features} coverage features (seed ${res.seed})`,
  );
  if (res.failure) {
    const saved =
      process.env.TSR_FUZZ_SAVE === "1"
        ? saveRegression(
            name,
            { $b64: Buffer.from(res.failure.input).toString("base64") },
            res.failure.problems.join("\n"),
          )
        : undefined;
    t.fail(`${name}: failure`, {
      problems: res.failure.problems.join("\n"),
      input: Buffer.from(res.failure.input).toString("base64"),
      ...(saved ? { saved } : {}),
    });
  } else t.pass(`${name}: no failure in ${res.execs} inputs`);
}

t.teardown(() => {
  for (const [k, v] of Object.entries(executed)) t.comment(`inputs executed: ${k} ${v}`);
});
