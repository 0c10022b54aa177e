import t from "tap";
import { Mutex } from "./mutex.js";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test("calls run one after another, in call order, even when one fails", async (t) => {
  const lock = new Mutex();
  const log: string[] = [];
  const op = (name: string, ms: number, fail = false) =>
    lock.run(async () => {
      log.push(`${name}+`);
      await sleep(ms);
      log.push(`${name}-`);
      if (fail) throw new Error(name);
      return name;
    });
  const results = await Promise.allSettled([op("a", 30), op("b", 5, true), op("c", 1)]);
  t.same(log, ["a+", "a-", "b+", "b-", "c+", "c-"]);
  t.same(
    results.map((r) => r.status),
    ["fulfilled", "rejected", "fulfilled"],
  );
});

t.test("two locks do not wait for each other", async (t) => {
  const log: string[] = [];
  const slow = new Mutex().run(async () => {
    await sleep(50);
    log.push("slow");
  });
  const fast = new Mutex().run(async () => {
    log.push("fast");
  });
  await Promise.all([slow, fast]);
  t.same(log, ["fast", "slow"]);
});
