import t from "tap";
import { addon } from "./addon.js";
import { trimWhenIdle } from "./trim.js";

t.test("malloc_trim is callable and trimWhenIdle debounces", async (t) => {
  t.type(addon().mallocTrim(), "boolean");
  for (let i = 0; i < 100; i++) trimWhenIdle(20);
  await new Promise((r) => setTimeout(r, 60));
  t.pass("no throw, one trim after the burst");
});
