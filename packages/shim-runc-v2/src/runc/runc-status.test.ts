import { Code, TtrpcError } from "@tsrunc/ttrpc";
import t from "tap";
import { RuncError } from "./runc-errors.js";
import { runcErrorToStatus } from "./runc-status.js";

t.test("a RuncError keeps runc's message and its kind's code", async (t) => {
  const cases: [RuncError, Code][] = [
    [new RuncError("container does not exist", { kind: "not-found", command: "state" }), Code.NotFound],
    [
      new RuncError("container with given ID already exists", { kind: "already-exists", command: "create" }),
      Code.AlreadyExists,
    ],
    [
      new RuncError("container not running", { kind: "not-running", command: "kill" }),
      Code.FailedPrecondition,
    ],
    [new RuncError("bad id", { kind: "invalid-argument", command: "kill" }), Code.InvalidArgument],
    [new RuncError("runc kill timed out", { kind: "timeout", command: "kill" }), Code.DeadlineExceeded],
    [new RuncError("runc kill canceled", { kind: "canceled", command: "kill" }), Code.Canceled],
    [new RuncError("criu failed", { kind: "failed", command: "checkpoint" }), Code.Unknown],
  ];
  for (const [err, code] of cases) {
    const status = runcErrorToStatus(err, "op");
    t.ok(status instanceof TtrpcError);
    t.equal(status.code, code, err.kind);
    t.equal(status.message, `OCI runtime op failed: ${err.message}`);
    t.equal(status.cause, err);
  }
});

t.test("other errors", async (t) => {
  const ttrpc = new TtrpcError(Code.NotFound, "process already finished");
  t.equal(runcErrorToStatus(ttrpc, "kill"), ttrpc, "a TtrpcError passes through");
  const plain = runcErrorToStatus(new Error("boom"), "kill");
  t.equal(plain.code, Code.Unknown);
  t.equal(plain.message, "boom");
});
