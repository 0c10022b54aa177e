// Replays every saved input under test/fuzz/regressions/<target>/ (minimized failures found by
// the campaigns, written there by `npm run fuzz`, plus hand-made ones for bugs found while
// building them) against the same checks as the campaign that found it. A live shim is started
// only when a shim target has inputs.
import * as path from "node:path";
import fc from "fast-check";
import t from "tap";
import { readMountInfo } from "../helpers/cleanup.js";
import { tempRoot } from "../helpers/temp-root.js";
import { loadRegressions } from "./lib/campaign.js";
import type { Case } from "./lib/frame-arbs.js";
import { buildBytes } from "./lib/frame-arbs.js";
import { runCase } from "./lib/frame-runner.js";
import { echoProbe, fuzzProfile, fuzzServer } from "./lib/fuzz-service.js";
import { decoderCovRun, decoderProblems, dispatch, dispatcherCovRun } from "./lib/inproc.js";
import { liveShim } from "./lib/live-shim.js";
import { connectProbe, shimProfile } from "./lib/shim-profile.js";
import type { TaskInput } from "./lib/task-arbs.js";
import {
  fixtures,
  localTaskInput,
  ROOT_PLACEHOLDER,
  removeAll,
  runTaskInput,
  swapBytes,
  untouched,
} from "./lib/task-fixtures.js";
import { inprocTask, taskRunner } from "./lib/task-inproc.js";
import { type Model, parseCommand, type Real } from "./lib/task-model.js";

const b64 = (x: unknown) => x as Uint8Array;

t.test("in-process targets", async (t) => {
  for (const r of loadRegressions<{ bytes: Uint8Array; cuts: number[] }>("decoder"))
    t.same(decoderProblems(r.input.bytes, r.input.cuts), [], path.basename(r.file));
  for (const r of loadRegressions<unknown>("decoder-cov"))
    t.same(decoderCovRun(b64(r.input)), [], path.basename(r.file));
  const env = fuzzServer();
  for (const r of loadRegressions<[Case, number]>("dispatcher"))
    t.same(await dispatch(env, buildBytes(r.input[0].ops), r.input[1] + 1), [], path.basename(r.file));
  for (const r of loadRegressions<unknown>("dispatcher-cov"))
    t.same(await dispatcherCovRun(env, b64(r.input)), [], path.basename(r.file));
  await new Promise((r) => setTimeout(r, 50));
  t.equal(env.server.connectionCount, 0, "dispatcher replays: no connection left");
  t.equal(env.stats.streaming, 0, "dispatcher replays: no streaming handler left running");
  t.equal(env.stats.hanging, 0, "dispatcher replays: no handler left waiting");
  await env.server.close();

  const inproc = loadRegressions<Case>("frames-inprocess");
  if (inproc.length) {
    const root = tempRoot(t, { tmpfs: false });
    const sock = path.join(root.path, "fuzz.sock");
    const srv = fuzzServer();
    await srv.server.listen(sock);
    for (const r of inproc)
      t.same((await runCase(sock, fuzzProfile(), echoProbe, r.input)).problems, [], path.basename(r.file));
    await srv.server.close();
  }

  const task = loadRegressions<unknown>("task-dispatch-cov");
  if (task.length) {
    const root = tempRoot(t);
    const runner = taskRunner(await inprocTask(root.path));
    for (const r of task)
      t.same(
        await runner.run(swapBytes(b64(r.input), ROOT_PLACEHOLDER, root.path)),
        [],
        path.basename(r.file),
      );
    runner.close();
  }
});

t.test("live-shim targets", async (t) => {
  const frames = loadRegressions<Case>("frames-shim");
  const messages = loadRegressions<TaskInput>("task-messages");
  const model = loadRegressions<string[]>("task-model");
  if (!frames.length && !messages.length && !model.length) {
    t.pass("no saved inputs for the live shim");
    return;
  }
  const shim = await liveShim(t);
  const fx = await fixtures(shim);
  for (const r of frames)
    t.same(
      (await runCase(shim.sock, shimProfile(), connectProbe, r.input, { answerMs: 3000 })).problems,
      [],
      path.basename(r.file),
    );
  const { client, task } = await shim.connect();
  const mounts = () => readMountInfo().filter((m) => m.mountPoint.startsWith(fx.root)).length;
  const mountsBefore = mounts();
  for (const r of messages) {
    const res = await runTaskInput(client, localTaskInput(fx, shim.env.namespace, r.input));
    t.same(res.problems, [], `${path.basename(r.file)}: ${r.note.split("\n")[0]}`);
    t.equal(untouched(fx), undefined, `${path.basename(r.file)}: nothing outside the bundles touched`);
  }
  t.same(await removeAll(shim, fx.ids), [], "every container removed");
  t.equal(mounts(), mountsBefore, "no mount left behind");
  const bundles: Record<string, string> = {};
  if (model.length)
    for (const id of ["m1", "m2"]) bundles[id] = await shim.env.bundle(id, ["/bin/sleep", "100000"]);
  for (const r of model) {
    const real: Real = { task, bundles, implemented: new Map(), log: [] };
    const cmds = r.input.map(parseCommand);
    const run = fc.asyncModelRun(() => ({ model: { containers: new Map() } as Model, real }), cmds);
    await t.resolves(run, `${path.basename(r.file)}: ${r.input.join(", ")}`);
    await removeAll(shim, ["m1", "m2"]);
  }
  await client.close();
  t.same(await shim.health(), [], "the shim is healthy after the replays");
});
