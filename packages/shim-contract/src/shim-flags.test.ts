import t from "tap";
import { FlagError, parseFlags } from "./shim-flags.js";

t.test("Go flag syntaxes all parse", async (t) => {
  const f = parseFlags([
    "-namespace",
    "ns1",
    "--address=/run/c.sock",
    "-publish-binary",
    "/usr/bin/containerd",
    "--id",
    "abc",
    "-debug",
    "start",
  ]);
  t.equal(f.namespace, "ns1");
  t.equal(f.address, "/run/c.sock");
  t.equal(f.publishBinary, "/usr/bin/containerd");
  t.equal(f.id, "abc");
  t.equal(f.debug, true);
  t.equal(f.verb, "start");
});

t.test("booleans take =false and the verb may be absent", async (t) => {
  const f = parseFlags(["-debug=false", "-v"]);
  t.equal(f.debug, false);
  t.equal(f.version, true);
  t.equal(f.verb, "");
});

t.test("unknown flags and missing values are errors", async (t) => {
  for (const argv of [["-nope", "x"], ["-id"], ["-debug=maybe"]]) {
    try {
      parseFlags(argv);
      t.fail(`${argv.join(" ")} parsed`);
    } catch (err) {
      t.ok(err instanceof FlagError, `${argv.join(" ")}: ${(err as Error).message}`);
    }
  }
});

t.test("the verb ends flag parsing", async (t) => {
  const f = parseFlags(["-id", "x", "delete", "-bundle", "y"]);
  t.equal(f.verb, "delete");
  t.same(f.rest, ["-bundle", "y"]);
  t.equal(f.bundle, "");
});
