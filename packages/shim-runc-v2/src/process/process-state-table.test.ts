import { Code } from "@tsrunc/ttrpc";
import t from "tap";
import { checkOperation, refusal, STATUSES, TRANSITIONS, verdict } from "./process-state-table.js";

t.test("refusals: FailedPrecondition or NotFound, worded like containerd's", async (t) => {
  t.throws(() => checkOperation("init", "start", "stopped"), {
    code: Code.FailedPrecondition,
    message: "cannot start a stopped process",
  });
  t.throws(() => checkOperation("init", "exec", "paused"), {
    code: Code.FailedPrecondition,
    message: "cannot exec in a paused container",
  });
  t.throws(() => checkOperation("init", "delete", "deleted"), {
    code: Code.NotFound,
    message: "cannot delete a deleted process",
  });
  t.throws(() => checkOperation("exec", "kill", "created"), {
    code: Code.FailedPrecondition,
    message: "process not created",
  });
  t.match(refusal("kill", "stopped"), { code: Code.NotFound, message: "process already finished" });
  t.doesNotThrow(() => checkOperation("init", "kill", "paused"));
});

t.test("an operation that never reaches an exec, or a state it is never in, is refused", async (t) => {
  t.equal(verdict("exec", "pause", "running"), "fp");
  t.equal(verdict("exec", "start", "paused"), "fp");
});

t.test("what an operation allows agrees with where a process can go", async (t) => {
  // start moves created → running, pause running → paused, resume paused → running, delete → deleted.
  for (const [op, to] of [
    ["start", "running"],
    ["pause", "paused"],
    ["resume", "running"],
    ["delete", "deleted"],
  ] as const) {
    for (const from of STATUSES) {
      if (verdict("init", op, from) === "ok") t.ok(TRANSITIONS[from].includes(to), `${op}: ${from} → ${to}`);
    }
  }
  for (const from of STATUSES) {
    if (from !== "deleted" && from !== "stopped")
      t.ok(TRANSITIONS[from].includes("stopped"), `exit in ${from}`);
  }
});
