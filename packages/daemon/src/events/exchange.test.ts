// EventExchange: filters, the order a subscriber sees, and the three ways a subscription ends
// (its signal, a backlog overflow, the daemon stopping) with what each leaves queued.
import { Code, isCode } from "@tsrunc/ttrpc";
import t from "tap";
import { type Envelope, EventExchange } from "./exchange.js";

const env = (topic: string): Envelope => ({ namespace: "default", topic }) as Envelope;

async function drain(it: AsyncIterable<Envelope>): Promise<{ topics: string[]; err?: unknown }> {
  const topics: string[] = [];
  try {
    for await (const e of it) topics.push(e.topic);
  } catch (err) {
    return { topics, err };
  }
  return { topics };
}

t.test("a filtered subscriber gets its events in order; its signal ends it quietly", async (t) => {
  const x = new EventExchange();
  const ac = new AbortController();
  const sub = x.subscribe((e) => e.topic.startsWith("/tasks/"), ac.signal);
  for (const topic of ["/tasks/create", "/containers/create", "/tasks/start"]) x.publish(env(topic));
  ac.abort();
  t.same(await drain(sub), { topics: ["/tasks/create", "/tasks/start"] });
  t.equal(x.subscriberCount, 0, "unsubscribed");
});

t.test("closeAll: what was queued is read, then Unavailable with the reason", async (t) => {
  const x = new EventExchange();
  const a = x.subscribe(() => true);
  const b = x.subscribe(() => true);
  x.publish(env("/tasks/exit"));
  x.closeAll("tsruncd is stopping");
  x.publish(env("/tasks/delete")); // after the close: nobody gets it
  for (const sub of [a, b]) {
    const r = await drain(sub);
    t.same(r.topics, ["/tasks/exit"]);
    t.ok(isCode(r.err, Code.Unavailable), "Unavailable");
    t.match((r.err as Error).message, /tsruncd is stopping/);
  }
  t.equal(x.subscriberCount, 0);
});

t.test("a subscriber that falls 4096 behind is cut off with ResourceExhausted", async (t) => {
  const x = new EventExchange();
  const sub = x.subscribe(() => true);
  for (let i = 0; i <= 4096; i++) x.publish(env(`/n/${i}`));
  t.equal(x.subscriberCount, 0, "dropped at once");
  const r = await drain(sub);
  t.equal(r.topics.length, 4096, "the backlog is still delivered");
  t.ok(isCode(r.err, Code.ResourceExhausted));
});
