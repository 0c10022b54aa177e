import t from "tap";
import {
  classifyRuncMessage,
  isRuncError,
  RUNC_ERROR_CODES,
  RuncError,
  type RuncErrorKind,
} from "./runc-errors.js";

// Messages exactly as runc 1.1.5 logs them (see the README's findings).
const MESSAGES: [string, RuncErrorKind][] = [
  ["container does not exist", "not-found"],
  ["runc create failed: container with given ID already exists", "already-exists"],
  ["container not running", "not-running"],
  ["container with id c1 is not running", "not-running"],
  ["cannot start a container that has stopped", "stopped"],
  ["exec failed: cannot exec in a stopped container", "stopped"],
  ["container not paused", "invalid-state"],
  ["cannot start an already running container", "invalid-state"],
  ["cannot delete container c1 that is not stopped: running", "invalid-state"],
  ["No help topic for 'features'", "unsupported"],
  ["flag provided but not defined: -resources", "unsupported"],
  ["criu failed: type DUMP errno 0\nlog file: /w/dump.log", "failed"],
  [
    'exec failed: unable to start container process: exec: "nope": executable file not found in $PATH',
    "failed",
  ],
  ["CRIU version check failed: fork/exec /nonexistent/criu: no such file or directory", "failed"],
];

t.test("runc's well-known messages map to kinds", async (t) => {
  for (const [message, kind] of MESSAGES) t.equal(classifyRuncMessage(message), kind, message);
});

t.test("every kind has its gRPC code", async (t) => {
  t.same(RUNC_ERROR_CODES, {
    "not-found": 5,
    "already-exists": 6,
    "not-running": 9,
    stopped: 9,
    "invalid-state": 9,
    "invalid-argument": 3,
    unsupported: 12,
    timeout: 4,
    canceled: 1,
    failed: 2,
  });
});

t.test("RuncError carries runc's message, the command and the exit code", async (t) => {
  const cause = new Error("execa result");
  const err = new RuncError("container does not exist", {
    kind: "not-found",
    command: "state",
    args: ["--root", "/r", "state", "x"],
    exitCode: 1,
    stderr: "container does not exist\n",
    cause,
  });
  t.ok(err instanceof Error);
  t.ok(err instanceof RuncError);
  t.equal(err.name, "RuncError");
  t.equal(err.message, "container does not exist");
  t.equal(err.kind, "not-found");
  t.equal(err.code, 5);
  t.equal(err.command, "state");
  t.same(err.args, ["--root", "/r", "state", "x"]);
  t.equal(err.exitCode, 1);
  t.equal(err.stderr, "container does not exist\n");
  t.same(err.criuErrors, []);
  t.equal(err.cause, cause);
  t.equal(String(err), "RuncError not-found (runc state, exit 1): container does not exist");
  t.ok(isRuncError(err));
  t.ok(isRuncError(err, "stopped", "not-found"));
  t.notOk(isRuncError(err, "stopped"));
  t.notOk(isRuncError(new Error("x")));
  const killed = new RuncError("runc kill canceled", { kind: "canceled", command: "kill" });
  t.equal(String(killed), "RuncError canceled (runc kill): runc kill canceled");
  t.equal(killed.exitCode, undefined);
});
