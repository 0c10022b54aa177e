import { writeSync } from "node:fs";
import t from "tap";
import { EventCounter } from "./eventfd.js";

const add = (c: EventCounter, n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  writeSync(c.fd, b);
};

t.test("take() reads and resets the counter without blocking", async (t) => {
  const c = new EventCounter();
  t.teardown(() => c.close());
  t.equal(c.take(), 0n, "nothing yet: 0, no wait");
  add(c, 2n);
  add(c, 3n);
  t.equal(c.take(), 5n, "the sum of what was added");
  t.equal(c.take(), 0n, "reset");
});

t.test("watch() reports each addition on the loop; close() stops it and is idempotent", async (t) => {
  const c = new EventCounter();
  const seen: bigint[] = [];
  let wake: () => void = () => {};
  c.watch(
    (n) => {
      seen.push(n);
      wake();
    },
    (err) => t.fail(err.message),
  );
  const next = () => new Promise<void>((r) => (wake = r));
  let p = next();
  add(c, 1n);
  await p;
  p = next();
  add(c, 7n);
  await p;
  t.same(seen, [1n, 7n]);
  c.close();
  c.close();
  t.equal(c.take(), 0n, "closed: nothing to take");
});
