import t from "tap";
import { MessageQueue } from "./message-queue.js";

async function drain<T>(q: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const v of q) out.push(v);
  return out;
}

t.test("delivers pushed messages in order, before and after the consumer waits", async (t) => {
  const q = new MessageQueue<number>();
  q.push(1);
  q.push(2);
  const all = drain(q);
  await Promise.resolve();
  q.push(3);
  q.end();
  q.push(4); // ignored after end
  t.same(await all, [1, 2, 3]);
});

t.test("fail() drops queued messages and rejects the consumer", async (t) => {
  const q = new MessageQueue<number>();
  q.push(1);
  q.fail(new Error("gone"));
  await t.rejects(q.next(), /gone/);
  const waiting = new MessageQueue<number>();
  const p = waiting.next();
  waiting.fail(new Error("later"));
  await t.rejects(p, /later/);
});

t.test("end() lets the consumer finish what is queued", async (t) => {
  const q = new MessageQueue<string>();
  q.push("a");
  q.end();
  t.same(await drain(q), ["a"]);
  t.ok(q.closed);
});

t.test("high/low hooks fire around the high-water mark", async (t) => {
  const log: string[] = [];
  const q = new MessageQueue<number>({ onHigh: () => log.push("high"), onLow: () => log.push("low") }, 4);
  for (let i = 0; i < 6; i++) q.push(i);
  t.same(log, ["high"]);
  await q.next(); // 5 left
  await q.next(); // 4 left
  await q.next(); // 3 left: still not below half
  t.same(log, ["high"]);
  await q.next(); // 2 left
  await q.next(); // 1 left: below half
  t.same(log, ["high", "low"]);
});

t.test("breaking out of for-await abandons the queue and releases backpressure", async (t) => {
  const log: string[] = [];
  const q = new MessageQueue<number>(
    { onHigh: () => log.push("high"), onLow: () => log.push("low"), onAbandon: () => log.push("abandon") },
    2,
  );
  q.push(1);
  q.push(2);
  q.push(3);
  for await (const v of q) {
    t.equal(v, 1);
    break;
  }
  t.same(log, ["high", "low", "abandon"]);
  q.push(4);
  t.equal(q.length, 0);
  t.same(await q.next(), { value: undefined, done: true });
});

t.test("a failed queue that was high releases its hold", async (t) => {
  const log: string[] = [];
  const q = new MessageQueue<number>({ onHigh: () => log.push("high"), onLow: () => log.push("low") }, 1);
  q.push(1);
  q.fail(new Error("x"));
  t.same(log, ["high", "low"]);
});

t.test("long queues compact as they are consumed", async (t) => {
  const q = new MessageQueue<number>({}, 1 << 30);
  for (let i = 0; i < 5000; i++) q.push(i);
  q.end();
  const got = await drain(q);
  t.same(
    got,
    Array.from({ length: 5000 }, (_, i) => i),
  );
});

t.test("end(err) delivers what is queued, then throws err", async (t) => {
  const q = new MessageQueue<number>();
  q.push(1);
  q.push(2);
  q.end(new Error("status"));
  t.same(await q.next(), { value: 1, done: false });
  t.same(await q.next(), { value: 2, done: false });
  await t.rejects(q.next(), /status/);
  const w = new MessageQueue<number>();
  const p = w.next();
  w.end(new Error("while waiting"));
  await t.rejects(p, /while waiting/);
});
