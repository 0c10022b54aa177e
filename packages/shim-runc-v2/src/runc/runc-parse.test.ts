import t from "tap";
import { parseFeatures, parsePids, parseState, parseStats, parseVersion } from "./runc-parse.js";

t.test("state", async (t) => {
  const text = JSON.stringify({
    ociVersion: "1.0.2-dev",
    id: "c1",
    pid: 6272,
    status: "created",
    bundle: "/b",
    rootfs: "/b/rootfs",
    created: "2026-11-27T23:33:50.495948607Z",
    owner: "",
    annotations: { a: "b", n: 1 },
  });
  t.same(parseState(text), {
    ociVersion: "1.0.2-dev",
    id: "c1",
    pid: 6272,
    status: "created",
    bundle: "/b",
    rootfs: "/b/rootfs",
    created: "2026-11-27T23:33:50.495948607Z",
    owner: "",
    annotations: { a: "b" },
  });
  const minimal = parseState('{"id":"c","pid":0,"status":"stopped","bundle":"/b"}');
  t.equal(minimal.status, "stopped");
  t.same(minimal.annotations, {});
  t.throws(() => parseState("nope"), /runc state: not JSON/);
  t.throws(() => parseState("[]"), /not a JSON object/);
  t.throws(() => parseState('{"id":"c","pid":1,"status":"weird","bundle":"/b"}'), /unknown status "weird"/);
  t.throws(() => parseState('{"id":"c","pid":-1,"status":"running","bundle":"/b"}'), /bad "pid"/);
  t.throws(() => parseState('{"pid":1,"status":"running","bundle":"/b"}'), /missing "id"/);
});

t.test("ps", async (t) => {
  t.same(parsePids("[7870]\n"), [7870]);
  t.same(parsePids("[1,2,3]"), [1, 2, 3]);
  t.same(parsePids("null\n"), [], "runc prints null when there are none");
  t.throws(() => parsePids("UID PID"), /runc ps: not JSON/);
  t.throws(() => parsePids('["1"]'), /not an array of pids/);
});

t.test("events --stats", async (t) => {
  const line = JSON.stringify({
    type: "stats",
    id: "c1",
    data: { cpu: { usage: { total: 12609049 } }, memory: { usage: { usage: 442368 } }, pids: { current: 1 } },
  });
  const stats = parseStats(`${line}\n`);
  t.equal(stats.cpu?.usage?.total, 12609049);
  t.equal(stats.memory?.usage?.usage, 442368);
  t.equal(stats.pids?.current, 1);
  t.throws(() => parseStats(""), /no event/);
  t.throws(() => parseStats('{"type":"oom","id":"c1"}'), /event type "oom"/);
  t.throws(() => parseStats('{"type":"stats","id":"c1"}'), /no "data"/);
});

t.test("features", async (t) => {
  const f = parseFeatures('{"ociVersionMin":"1.0.0","linux":{"namespaces":["pid"]},"extra":1}');
  t.equal(f.ociVersionMin, "1.0.0");
  t.same(f.linux?.namespaces, ["pid"]);
  t.throws(() => parseFeatures("null"), /not a JSON object/);
});

t.test("version", async (t) => {
  const v = parseVersion(
    "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\ngo: go1.19.8\nlibseccomp: 2.5.4\n",
  );
  t.same(v, {
    version: "1.1.5+ds1",
    commit: "1.1.5+ds1-1+deb12u1",
    spec: "1.0.2-dev",
    go: "go1.19.8",
    libseccomp: "2.5.4",
  });
  t.same(parseVersion("runc version 1.2.0\n"), { version: "1.2.0" });
  t.throws(() => parseVersion("crun version 1.8"), /no "runc version" line/);
});
