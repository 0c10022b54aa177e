import { Code, TtrpcError } from "@tsrunc/ttrpc";
import t from "tap";
import { containerFields, type FieldGetter, mapField, parseFilter, parseFilters } from "./filters.js";
import type { ContainerRecord } from "./records.js";

// containerd's own filter test corpus (pkg/filters/filter_test.go), with its adaptor.
interface Entry {
  name: string;
  other?: string;
  labels?: Record<string, string>;
}
const corpus: Entry[] = [
  { name: "foo", labels: { foo: "true" } },
  { name: "bar" },
  { name: "foo", labels: { foo: "present", "more complex label": "present" } },
  { name: "bar", labels: { bar: "true" } },
  { name: "fooer", labels: { 'more complex label with \\ and "': "present" } },
  { name: "fooer", labels: { 'more complex label with \\ and ".post': "present" } },
  { name: "baz", other: "too complex, yo" },
  { name: "bazo", other: "abc" },
  { name: "compound", labels: { foo: "omg_asdf.asdf-qwer" } },
];
const adapt =
  (e: Entry): FieldGetter =>
  (path) => {
    switch (path[0]) {
      case "name":
        return e.name || undefined;
      case "other":
        return e.other || undefined;
      case "labels":
        return mapField(path.slice(1), e.labels ?? {});
    }
    return undefined;
  };
function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

const matching = (filter: string) => corpus.flatMap((e, i) => (parseFilter(filter)(adapt(e)) ? [i] : []));

t.test("containerd's filter cases match the same entries", async (t) => {
  const cases: [string, number[]][] = [
    ["", [0, 1, 2, 3, 4, 5, 6, 7, 8]],
    ["name", [0, 1, 2, 3, 4, 5, 6, 7, 8]],
    ["labels.foo", [0, 2, 8]],
    ["labels.foo,name", [0, 2, 8]],
    ["labels.foo==true", [0]],
    ["labels.foo==omg_asdf.asdf-qwer", [8]],
    ["name==bar", [1, 3]],
    ["name!=bar", [0, 2, 4, 5, 6, 7, 8]],
    ["name==bar,labels.bar", [3]],
    ['other=="too complex, yo"', [6]],
    ["other~=[abc]+,name!=foo", [6, 7]],
    ["other~=/[abc]+/,name!=foo", [6, 7]],
    ["other~=/[abc]{1,2}/,name!=foo", [6, 7]],
    ['other~=/[abc]{0,1}"\\//,name!=foo', []],
    ["name==bar,labels.bar==true", [3]],
    ["name==bar,labels.bar==wrong", []],
    ['name==foo,labels."more complex label"', [2]],
    ['labels."more complex label with \\\\ and \\""==present', [4]],
    ['labels."more complex label with \\\\ and \\"".post==present', [5]],
    // and a few of ours: spaces before tokens, absent fields and !=, Go escapes, inline flags
    [" name == bar", [1, 3]],
    ['other!=""', [6, 7]],
    ["labels.nope!=x", [0, 1, 2, 3, 4, 5, 6, 7, 8]],
    ['name=="\\x66o\\157"', [0, 2]],
    ['name=="\\u0062ar"', [1, 3]],
    ["name~=(?i)^FOO$", [0, 2]],
    ["name~=|^ba.$|", [1, 3, 6]],
  ];
  for (const [filter, want] of cases) t.same(matching(filter), want, filter);
});

t.test("several filter strings are ORed", async (t) => {
  const f = parseFilters(["name==bar,labels.bar", "other==abc"]);
  t.same(
    corpus.flatMap((e, i) => (f(adapt(e)) ? [i] : [])),
    [3, 7],
  );
  t.equal(parseFilters([])(adapt(corpus[0]!)), true, "no filters match everything");
});

t.test("bad syntax is InvalidArgument, with the position marked as containerd marks it", async (t) => {
  const cases: [string, string][] = [
    [
      "labels.|foo|==omg_asdf.asdf-qwer",
      "filters: parse error: [labels. >|||< foo|==omg_asdf.asdf-qwer]: invalid quote encountered",
    ],
    [
      'labels.?"more complex label with \\\\ and \\"".post==present',
      'filters: parse error: [labels. >|?|< "more complex label with \\\\ and \\"".post==present]: expected field or quoted',
    ],
    ["name==foo,", "filters: parse error: [name==foo,]: expected field or quoted"],
    ["labels.", "filters: parse error: [labels.]: expected field or quoted"],
    ["image~=,id?=?fbaq", "filters: parse error: [image~= >|,|< id?=?fbaq]: expected value or quoted"],
    [
      "labels.ns/key==value",
      "filters: parse error: [labels.ns >|/|< key==value]: quoted literal not terminated",
    ],
    ["labels.key==/value", "filters: parse error: [labels.key== >|/|< value]: quoted literal not terminated"],
    ["id===x", 'filters: parse error: [id >|=|< ==x]: unsupported operator "==="'],
    ["id==x y", "filters: parse error: [id==x >| |< y]: unexpected input:  "],
    ["id==", "filters: parse error: [id==]: expected value or quoted"],
    ['id=="a\\qb"', 'filters: parse error: [id== >|"|< a\\qb"]: illegal escape sequence'],
    ['id=="\\x4"', 'filters: parse error: [id== >|"|< \\x4"]: illegal numeric escape sequence'],
    ["id==x,,y", "filters: parse error: [id==x, >|,|< y]: expected field or quoted"],
    ["id x", 'filters: parse error: [id  >|x|< ]: expected an operator ("=="|"!="|"~=")'],
    ["id\u0000", "filters: parse error: [id >|\u0000|< ]: unexpected null"],
    ["id==x ", "filters: parse error: [id==x >| |< ]: unexpected input:  "],
  ];
  for (const [filter, message] of cases) {
    const err = caught(() => parseFilters(["id==ok", filter]));
    t.ok(err instanceof TtrpcError && err.code === Code.InvalidArgument, `${filter}: InvalidArgument`);
    t.equal((err as Error | undefined)?.message, message, filter);
  }
  t.throws(() => parseFilter("id~=("), {
    code: Code.InvalidArgument,
    message: /^filters: invalid regexp "\(": /,
  });
});

t.test("containerd's container adaptor: id, image, runtime.name, labels.<key with dots>", async (t) => {
  const rec: ContainerRecord = {
    namespace: "default",
    id: "web-1",
    labels: { "io.kubernetes.pod": "p1", tier: "front end" },
    image: "docker.io/library/nginx:latest",
    runtime: { name: "io.containerd.tsrunc.v2" },
    snapshotter: "overlayfs",
    snapshotKey: "web-1",
    extensions: {},
    sandboxId: "",
    createdAt: new Date(),
    updatedAt: new Date(),
  };
  const fields = containerFields(rec);
  const cases: [string, boolean][] = [
    ["id==web-1", true],
    ["id~=^web-", true],
    ["image==docker.io/library/nginx:latest", true],
    ["image~=nginx", true],
    ["runtime.name==io.containerd.tsrunc.v2", true],
    ["runtime", false],
    ["runtime.options", false],
    ["labels.io.kubernetes.pod==p1", true],
    ['labels."io.kubernetes.pod"==p1', true],
    ['labels.tier=="front end"', true],
    ["labels.tier!=back", true],
    ["labels.absent", false],
    ["snapshotter==overlayfs", false], // not a field containerd filters on
    ["id==web-1,labels.tier", true],
    ["id==web-1,labels.absent", false],
  ];
  for (const [filter, want] of cases) t.equal(parseFilter(filter)(fields), want, filter);
});
