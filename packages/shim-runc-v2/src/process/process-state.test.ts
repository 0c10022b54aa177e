import { Code, TtrpcError } from "@tsrunc/ttrpc";
import t from "tap";
import { ProcessState } from "./process-state.js";
import { checkOperation } from "./process-state-table.js";

t.test("normal life: created → running → stopped → deleted", async (t) => {
  const s = new ProcessState();
  t.equal(s.status, "created");
  s.transition("running");
  const w1 = s.wait();
  const w2 = s.wait();
  t.ok(s.setExited({ status: 3, exitedAt: new Date(0) }));
  t.equal(s.status, "stopped");
  t.equal((await w1).status, 3);
  t.equal((await w2).status, 3);
  t.equal((await s.wait()).status, 3, "a waiter after the exit gets it at once");
  t.notOk(s.setExited({ status: 9, exitedAt: new Date(1) }), "second exit ignored");
  s.transition("deleted");
});

t.test("wrong transitions are FailedPrecondition", async (t) => {
  const s = new ProcessState();
  try {
    s.transition("paused");
    t.fail("created → paused was allowed");
  } catch (e) {
    t.ok(e instanceof TtrpcError && e.code === Code.FailedPrecondition, "FailedPrecondition");
  }
  s.transition("running");
  t.throws(() => s.transition("deleted"));
  t.throws(() => checkOperation("init", "delete", s.status), { code: Code.FailedPrecondition });
});

t.test("a waiter can be canceled", async (t) => {
  const s = new ProcessState();
  const ac = new AbortController();
  const w = s.wait(ac.signal);
  ac.abort();
  await t.rejects(w, { code: Code.Canceled });
});

t.test("a waiter whose call passes its deadline fails with the call's reason", async (t) => {
  // Found by test/fuzz: a Wait whose deadline passed was answered Canceled, not DeadlineExceeded.
  const s = new ProcessState();
  const ac = new AbortController();
  const w = s.wait(ac.signal);
  ac.abort(new TtrpcError(Code.DeadlineExceeded, "ttrpc: deadline exceeded"));
  await t.rejects(w, { code: Code.DeadlineExceeded });
});
