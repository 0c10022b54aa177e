import t from "tap";
import { addon } from "./addon.js";
import { trimWhenIdle } from "./trim.js";

t.test("malloc_trim is callable", async (t) => {
  t.type(addon().mallocTrim(), "boolean");
});

t.test("a burst of calls trims once, after the burst", async (t) => {
  let trims = 0;
  for (let i = 0; i < 100; i++) trimWhenIdle(30, () => trims++);
  t.equal(trims, 0, "nothing during the burst");
  await new Promise((r) => setTimeout(r, 80));
  t.equal(trims, 1, "one trim once idle");
});
