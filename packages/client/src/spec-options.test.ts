// ctr's --mount syntax, env merging, K=V lists, --user syntax and signal names.

import { Code } from "@tsrunc/ttrpc";
import t from "tap";
import { parseSignal, signalName } from "./signals.js";
import {
  checkEnv,
  parseKeyValues,
  parseMountFlag,
  parseUser,
  replaceOrAppendEnv,
  splitCsv,
} from "./spec-options.js";

t.test("--mount in ctr's syntax", async (t) => {
  t.same(parseMountFlag("type=bind,src=/a,dst=/b,options=rbind:ro"), {
    destination: "/b",
    type: "bind",
    source: "/a",
    options: ["rbind", "ro"],
  });
  t.same(parseMountFlag("type=tmpfs,source=tmpfs,destination=/scratch,options=size=1m:mode=1777"), {
    destination: "/scratch",
    type: "tmpfs",
    source: "tmpfs",
    options: ["size=1m", "mode=1777"],
  });
  t.same(parseMountFlag("type=bind,src=data,dst=/d", "/home/me").source, "/home/me/data", "relative src");
  t.same(parseMountFlag('type=bind,"src=/a,b",dst=/c').source, "/a,b", "CSV quoting");
  t.throws(() => parseMountFlag("type=bind,src=/a"), {
    code: Code.InvalidArgument,
    message: /dst= is required/,
  });
  t.throws(() => parseMountFlag("type=bind,src=/a,dst=rel"), /absolute/);
  t.throws(() => parseMountFlag("type=bind,dst=/b"), /needs src=/);
  t.throws(() => parseMountFlag("type=bind,src=/a,dst=/b,ro"), /key=value/);
  t.throws(() => parseMountFlag("type=bind,src=/a,dst=/b,mode=ro"), /unknown key "mode"/);
});

t.test("splitCsv", async (t) => {
  t.same(splitCsv("a,b,,c"), ["a", "b", "", "c"]);
  t.same(splitCsv('"x ""y""",z'), ['x "y"', "z"]);
  t.throws(() => splitCsv('"open'), /unterminated/);
  t.throws(() => splitCsv('"a"b'), /extraneous/);
});

t.test("env: replace or append; a bare name unsets", async (t) => {
  t.same(replaceOrAppendEnv(["A=1", "B=2"], ["B=3", "C=4"]), ["A=1", "B=3", "C=4"]);
  t.same(replaceOrAppendEnv(["A=1", "B=2"], ["A"]), ["B=2"]);
  t.same(replaceOrAppendEnv(["A=1"], ["A", "A=5"]), ["A=5"], "unset then set again");
  t.same(replaceOrAppendEnv([], ["X=a=b"]), ["X=a=b"], "value may hold '='");
  t.same(checkEnv(["A=1", "B"]), ["A=1", "B"]);
  t.throws(() => checkEnv(["=x"]), { code: Code.InvalidArgument });
});

t.test("K=V lists (labels)", async (t) => {
  t.same(parseKeyValues(["a=1", "b", "c=x=y"]), { a: "1", b: "", c: "x=y" });
  const proto = parseKeyValues(["__proto__=1"]);
  t.equal(Object.keys(proto).length, 1, "__proto__ is an own key");
  t.throws(() => parseKeyValues(["=v"]), /empty key/);
});

t.test("--user syntax", async (t) => {
  t.same(parseUser("0"), { user: 0 });
  t.same(parseUser("1000:100"), { user: 1000, group: 100 });
  t.same(parseUser("www-data:adm"), { user: "www-data", group: "adm" });
  t.throws(() => parseUser("4294967296"), /out of range/);
  t.throws(() => parseUser("a b"), { code: Code.InvalidArgument });
  t.throws(() => parseUser("1:"), /empty group/);
});

t.test("signals by name or number", async (t) => {
  t.equal(parseSignal("SIGKILL"), 9);
  t.equal(parseSignal("kill"), 9);
  t.equal(parseSignal("TERM"), 15);
  t.equal(parseSignal("15"), 15);
  t.equal(parseSignal(2), 2);
  t.throws(() => parseSignal("SIGNOPE"), /unknown signal/);
  t.throws(() => parseSignal(999), /unknown signal/);
  t.equal(signalName(15), "SIGTERM");
});
