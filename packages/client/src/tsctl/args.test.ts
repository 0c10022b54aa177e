// tsctl's argument parsing: ctr's rule that what follows the ID is the container's command.

import t from "tap";
import { type OptionSpec, parseArgs, UsageError } from "./args.js";
import { EXEC_OPTIONS } from "./exec.js";
import { parseRun } from "./run.js";

const specs: OptionSpec[] = [
  { name: "detach", short: "d", type: "boolean" },
  { name: "tty", short: "t", type: "boolean" },
  { name: "env", short: "e", type: "string", multiple: true },
  { name: "namespace", short: "n", type: "string" },
];

t.test("long, short, clustered, = and repeatable options", async (t) => {
  const p = parseArgs(["-dt", "--env", "A=1", "-e", "B=2", "--env=C=3", "-nfoo", "x"], specs);
  t.same(p.values, { detach: true, tty: true, env: ["A=1", "B=2", "C=3"], namespace: "foo" });
  t.same(p.positionals, ["x"]);
  t.same(parseArgs(["-n", "a", "-n=b"], specs).values.namespace, "b", "last one wins");
  t.same(parseArgs(["--tty=false"], specs).values.tty, false);
  t.same(parseArgs(["a", "--", "-d", "--x"], specs).positionals, ["a", "-d", "--x"]);
  t.same(parseArgs(["-"], specs).positionals, ["-"]);
});

t.test("mistakes are UsageErrors", async (t) => {
  t.throws(() => parseArgs(["--nope"], specs), new UsageError("unknown option --nope"));
  t.throws(() => parseArgs(["-x"], specs), new UsageError("unknown option -x"));
  t.throws(() => parseArgs(["--env"], specs), new UsageError("option --env needs a value"));
  t.throws(() => parseArgs(["-e"], specs), new UsageError("option -e needs a value"));
  t.throws(() => parseArgs(["--tty=yes"], specs), new UsageError("option --tty takes no value"));
});

t.test("parsing stops after the given number of positionals", async (t) => {
  const p = parseArgs(["-d", "id", "-t", "--env", "X"], specs, { stopAfter: 1 });
  t.same(p.values, { detach: true });
  t.same(p.positionals, ["id", "-t", "--env", "X"]);
});

t.test("run: options after ID belong to the command", async (t) => {
  const { request: r } = parseRun([
    "--rm",
    "-t",
    "--env",
    "A=1",
    "--rootfs",
    "/r",
    "c1",
    "sh",
    "-c",
    "ls --color -t",
    "--rm",
  ]);
  t.equal(r.id, "c1");
  t.same(r.args, ["sh", "-c", "ls --color -t", "--rm"]);
  t.equal(r.rm, true);
  t.equal(r.tty, true);
  t.same(r.env, ["A=1"]);
  t.equal(r.rootfs, "/r");
  t.equal(r.runtime, "io.containerd.tsrunc.v2");
  const d = parseRun([
    "-d",
    "--rootfs=/r",
    "--label",
    "a=b",
    "--mount",
    "type=bind,src=/x,dst=/y",
    "c2",
    "top",
    "-d",
  ]);
  t.same(d.request.args, ["top", "-d"]);
  t.equal(d.request.detach, true);
  t.same(d.request.labels, { a: "b" });
  t.same(d.request.mounts, [{ destination: "/y", type: "bind", source: "/x" }]);
  t.equal(
    parseRun(["--rootfs", "/r", "--runtime", "io.containerd.runc.v2", "c", "x"]).request.runtime,
    "io.containerd.runc.v2",
  );
});

t.test("run: the IMAGE form and missing pieces", async (t) => {
  const img = parseRun(["--rm", "-e", "A=1", "busybox", "c1", "sh", "-c", "--rm"]).request;
  t.equal(img.image, "busybox");
  t.equal(img.rootfs, undefined);
  t.equal(img.id, "c1");
  t.same(img.args, ["sh", "-c", "--rm"], "options stop at IMAGE ID");
  t.same(img.env, ["A=1"]);
  t.same(parseRun(["--platform", "linux/amd64", "busybox", "c1"]).request.args, [], "the image's command");
  t.equal(parseRun(["--platform", "linux/amd64", "busybox", "c1"]).request.platform, "linux/amd64");
  t.throws(() => parseRun(["busybox"]), UsageError);
  t.throws(() => parseRun([]), UsageError);
  t.throws(() => parseRun(["--rootfs", "/r"]), new UsageError("run needs a container ID"));
  t.throws(() => parseRun(["--rootfs", "/r", "c1"]), UsageError);
  t.throws(() => parseRun(["--rm", "-d", "--rootfs", "/r", "c1", "x"]), UsageError);
  // A value after the rootfs's ID is the command, even one that looks like IMAGE ID.
  t.same(parseRun(["--rootfs", "/r", "c1", "c2"]).request.args, ["c2"]);
});

t.test("exec: options after ID belong to the command", async (t) => {
  const p = parseArgs(["-t", "--exec-id", "e1", "c1", "ps", "-ef", "--exec-id", "zz"], EXEC_OPTIONS, {
    stopAfter: 1,
  });
  t.same(p.positionals, ["c1", "ps", "-ef", "--exec-id", "zz"]);
  t.equal(p.values["exec-id"], "e1");
  t.equal(p.values.tty, true);
});
