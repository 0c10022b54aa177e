import { Code } from "@tsrunc/ttrpc";
import t from "tap";
import { ProcessState } from "../process/process-state.js";
import { RuncError } from "../runc/index.js";
import type { TaskEvents } from "../shim-context.js";
import { type PausableInit, pauseInit, resumeInit, thawAfterExit } from "./pause.js";

interface Fake {
  init: PausableInit;
  calls: string[];
  events: string[];
  ev: TaskEvents;
}

/** An init whose runc records its calls; `hooks` replace a call's behaviour. */
function fake(hooks: Partial<Record<"pause" | "resume", (f: Fake) => Promise<void>>> = {}): Fake {
  const state = new ProcessState();
  state.transition("running");
  const f = { calls: [] as string[], events: [] as string[] } as Fake;
  const call = (name: "pause" | "resume") => async () => {
    f.calls.push(name);
    await hooks[name]?.(f);
  };
  f.init = {
    containerId: "c1",
    state,
    runc: { pause: call("pause"), resume: call("resume") },
  } as unknown as PausableInit;
  f.ev = {
    paused: (e: { containerId: string }) => f.events.push(`paused ${e.containerId}`),
    resumed: (e: { containerId: string }) => f.events.push(`resumed ${e.containerId}`),
  } as unknown as TaskEvents;
  return f;
}

t.test("running ⇄ paused, one event each way", async (t) => {
  const f = fake();
  await pauseInit(f.init, f.ev);
  t.equal(f.init.state.status, "paused");
  await t.rejects(pauseInit(f.init, f.ev), { code: Code.FailedPrecondition }, "pause twice");
  await resumeInit(f.init, f.ev);
  t.equal(f.init.state.status, "running");
  await t.rejects(resumeInit(f.init, f.ev), { code: Code.FailedPrecondition }, "resume a running one");
  t.same(f.calls, ["pause", "resume"], "runc ran only for the valid requests");
  t.same(f.events, ["paused c1", "resumed c1"]);
});

t.test("created and stopped processes cannot be paused", async (t) => {
  const created = fake();
  const state = new ProcessState();
  (created.init as { state: ProcessState }).state = state;
  await t.rejects(pauseInit(created.init, created.ev), { code: Code.FailedPrecondition });
  const stopped = fake();
  stopped.init.state.setExited({ status: 0, exitedAt: new Date() });
  await t.rejects(pauseInit(stopped.init, stopped.ev), { code: Code.FailedPrecondition });
  t.same([...created.calls, ...stopped.calls], []);
});

t.test("concurrent pauses: one succeeds, the other is FailedPrecondition (serialized)", async (t) => {
  const f = fake({ pause: () => new Promise((r) => setTimeout(r, 20)) });
  const results = await Promise.allSettled([pauseInit(f.init, f.ev), pauseInit(f.init, f.ev)]);
  t.same(
    results.map((r) => r.status),
    ["fulfilled", "rejected"],
  );
  t.same(f.calls, ["pause"]);
  t.same(f.events, ["paused c1"]);
});

t.test("runc's error keeps its code; an exit during pause thaws and refuses", async (t) => {
  const failing = fake({
    pause: async () => {
      throw new RuncError("some freezer failure", { kind: "failed", command: "pause" });
    },
  });
  await t.rejects(pauseInit(failing.init, failing.ev), {
    code: Code.Unknown,
    message: /OCI runtime pause failed: some freezer failure/,
  });
  t.equal(failing.init.state.status, "running");

  const exiting = fake({
    pause: async (f) => {
      f.init.state.setExited({ status: 137, exitedAt: new Date() });
    },
  });
  await t.rejects(pauseInit(exiting.init, exiting.ev), { code: Code.FailedPrecondition });
  t.same(exiting.calls, ["pause", "resume"], "what runc froze is thawed again");
  t.same(exiting.events, [], "no /tasks/paused for a stopped container");
});

t.test("thawAfterExit resumes and swallows runc's refusal", async (t) => {
  const f = fake({
    resume: async () => {
      throw new RuncError("container not paused", { kind: "invalid-state", command: "resume" });
    },
  });
  const logged: unknown[] = [];
  thawAfterExit(f.init, { debug: (o: unknown) => logged.push(o) } as never);
  await new Promise((r) => setTimeout(r, 10));
  t.same(f.calls, ["resume"]);
  t.equal(logged.length, 1);
});
