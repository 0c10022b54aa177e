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
// Block coverage starts when lib/covfuzz.js is evaluated, with the other imports, before any
// code under test first runs (V8 compiles functions lazily, at their first call).

import { encodeRequest } from "@tsrunc/ttrpc";
import fc from "fast-check";
import t from "tap";
import { tempRoot } from "../helpers/temp-root.js";
import { campaign, executed, fileBudgetMs, saveRegression, seedFromEnv } from "./lib/campaign.js";
import { covfuzz } from "./lib/covfuzz.js";
import { turns } from "./lib/duplex.js";
import { buildBytes, caseArb } from "./lib/frame-arbs.js";
import { fuzzCalls, fuzzServer } from "./lib/fuzz-service.js";
import { decoderCovRun, decoderProblems, dispatch, dispatcherCovRun } from "./lib/inproc.js";
import { taskMethods } from "./lib/shim-profile.js";
import type { TapTest } from "./lib/tap.js";
import { ROOT_PLACEHOLDER, swapBytes } from "./lib/task-fixtures.js";
import { inprocTask, taskRunner } from "./lib/task-inproc.js";
import { MAX_DATA, rawFrame, T_DATA, T_REQUEST } from "./lib/wire.js";

const BUDGET = fileBudgetMs(9000);

// ---------------------------------------------------------------------------------------------
// decoder

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
    run: decoderCovRun,
  });
  report(t, "decoder-cov", res);
});

// ---------------------------------------------------------------------------------------------
// dispatcher

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
    run: (input) => dispatcherCovRun(env, input),
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
  const runner = taskRunner(task);
  const res = await covfuzz({
    name: "task-dispatch-cov",
    targets: ["/shim-runc-v2/dist/", "/protocol/dist/"],
    seeds,
    dictionary: tokens,
    ms: BUDGET * 0.3,
    seed: seedFromEnv(),
    run: runner.run,
  });
  report(t, "task-dispatch-cov", res, (b) => swapBytes(b, root.path, ROOT_PLACEHOLDER));
  runner.close();
  await task.server.close();
});

function report(
  t: TapTest,
  name: string,
  res: Awaited<ReturnType<typeof covfuzz>>,
  portable: (b: Uint8Array) => Uint8Array = (b) => b,
) {
  executed[name] = (executed[name] ?? 0) + res.execs;
  t.comment(
    `${name}: ${res.execs} inputs, corpus ${res.corpus.length}, ${res.features} coverage features (seed ${res.seed})`,
  );
  if (res.failure) {
    const saved =
      process.env.TSR_FUZZ_SAVE === "1"
        ? saveRegression(
            name,
            { $b64: Buffer.from(portable(res.failure.input)).toString("base64") },
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
