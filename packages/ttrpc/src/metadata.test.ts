import t from "tap";
import { fromKeyValues, toKeyValues } from "./metadata.js";

t.test("toKeyValues lowercases keys and flattens lists in order", async (t) => {
  t.same(toKeyValues(undefined), []);
  t.same(toKeyValues({ Foo: "1", bar: ["2", "3"] }), [
    { key: "foo", value: "1" },
    { key: "bar", value: "2" },
    { key: "bar", value: "3" },
  ]);
  t.same(toKeyValues({ empty: [] }), []);
});

t.test("fromKeyValues groups values per lowercased key", async (t) => {
  const md = fromKeyValues([
    { key: "A", value: "1" },
    { key: "a", value: "2" },
    { key: "b", value: "" },
  ]);
  t.same({ ...md }, { a: ["1", "2"], b: [""] });
  t.same({ ...fromKeyValues([]) }, {});
});

t.test("fromKeyValues treats prototype names as plain keys", async (t) => {
  const md = fromKeyValues([
    { key: "__proto__", value: "x" },
    { key: "constructor", value: "y" },
  ]);
  const protoKey = ["__", "proto", "__"].join("");
  t.same(Object.getOwnPropertyDescriptor(md, protoKey)?.value, ["x"]);
  t.same(md.constructor, ["y"]);
  t.equal(Object.getPrototypeOf(md), null);
  t.equal(({} as Record<string, unknown>).x, undefined);
});
