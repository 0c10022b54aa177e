// Message-level fuzzing of a live tsruncd: every Containers, Tasks and Events method (and the
// shims' Events/Forward) gets structured hostile requests, mutated and wrong-typed bodies,
// protobuf soup and random bytes (lib/daemon-arbs.ts), in well-formed ttrpc envelopes, with the
// namespace in the request metadata missing, the test's, or hostile; server streams (ListStream,
// Subscribe) are read for a moment and abandoned. Each must be answered promptly with a proper
// status (OK or containerd's errdefs codes; Unknown only from a shim), never with a JS error.
// Afterwards every container the campaign made is removed through the API, no bundle is left,
// and the daemon is healthy (lib/daemon-live.ts). Saved failures
// (test/fuzz/regressions/daemon-messages/) are replayed first; directed cases follow.
import * as fs from "node:fs";
import * as path from "node:path";
import { ContainersService, EventsService } from "@tsrunc/protocol/daemon";
import { OciSpecType } from "@tsrunc/protocol/shim";
import { type Client, TtrpcError } from "@tsrunc/ttrpc";
import t from "tap";
import { campaign, executed, fileBudgetMs, loadRegressions } from "./lib/campaign.js";
import {
  type DaemonInput,
  daemonInputArb,
  EXTRA_NAMESPACES,
  FAIL_SHIM,
  nsMetadata,
} from "./lib/daemon-arbs.js";
import { type DaemonConn, type LiveDaemon, liveDaemon, SENTINEL } from "./lib/daemon-live.js";
import { DAEMON_PROPER, daemonMethods } from "./lib/daemon-profile.js";
import { snapshot } from "./lib/health.js";

const BUDGET = fileBudgetMs(10000);
t.setTimeout(Math.max(180_000, BUDGET * 3));

const JS_ERROR =
  /TypeError|ReferenceError|RangeError|SyntaxError|Cannot read propert|is not a function|is not iterable|Maximum call stack/;

/** Sends one input; returns the status code and the problems with the answer. */
async function runInput(
  client: Client,
  testNs: string,
  input: DaemonInput,
): Promise<{ code: number; message: string; problems: string[] }> {
  const metadata = nsMetadata(input.ns, testNs);
  const m = daemonMethods.get(input.service)?.get(input.method);
  const what = `${input.method} (${input.how})`;
  const t0 = Date.now();
  let code = 0;
  let message = "";
  const fail = (e: unknown) => {
    if (!(e instanceof TtrpcError)) throw e;
    code = e.code;
    message = e.message;
  };
  if (m?.kind === "server") {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), input.streamMs);
    try {
      const s = client.openStream(input.service, input.method, "server", input.payload, {
        metadata,
        signal: ac.signal,
        timeoutMs: 8000,
      });
      for await (const _ of s.messages) {
        // read until abandoned
      }
    } catch (e) {
      fail(e);
    } finally {
      clearTimeout(timer);
    }
    if (code === 1 && ac.signal.aborted) code = 0; // we abandoned it
  } else {
    // Wait waits for an exit: it gets a short deadline, and running out of it is its answer.
    const wait = input.method === "Wait";
    await client
      .call(input.service, input.method, input.payload, { metadata, timeoutMs: wait ? 300 : 8000 })
      .catch(fail);
    if (wait && code === 4) code = 0;
  }
  const ms = Date.now() - t0;
  const problems: string[] = [];
  if (JS_ERROR.test(message)) problems.push(`${what}: a JS error surfaced as code ${code}: ${message}`);
  // Unknown only from a shim (Tasks relay shims' answers; a Create may fail in the shim's start).
  const ok = DAEMON_PROPER.has(code) || (code === 2 && input.service.endsWith(".Tasks"));
  if (!ok) problems.push(`${what}: improper status ${code}: ${message.slice(0, 300)}`);
  if (ms > 5000) problems.push(`${what}: answered after ${ms} ms`);
  return { code, message, problems };
}

/** Removes every container of the campaign's namespaces (not the sentinel) through the API. */
async function removeAll(d: LiveDaemon, conn: DaemonConn): Promise<string[]> {
  const problems: string[] = [];
  for (const ns of [d.namespace, ...EXTRA_NAMESPACES]) {
    const o = { metadata: { "containerd-namespace": ns }, timeoutMs: 10_000 };
    const list = await conn.containers.list({ filters: [] }, o);
    for (const c of list.containers) {
      if (ns === d.namespace && c.id === SENTINEL) continue;
      await conn.tasks.delete({ containerId: c.id }, o).catch(() => {});
      await conn.containers
        .delete({ id: c.id }, o)
        .catch((e: Error) => problems.push(`delete ${ns}/${c.id}: ${e.message}`));
    }
    const bundles = fs.existsSync(path.join(d.state, ns)) ? fs.readdirSync(path.join(d.state, ns)) : [];
    const left = bundles.filter((b) => !(ns === d.namespace && b === SENTINEL));
    if (left.length) problems.push(`bundles left in ${ns}: ${left.join(" ")}`);
  }
  return problems;
}

t.test("hostile Containers/Tasks/Events requests against a live tsruncd", async (t) => {
  const d = await liveDaemon(t, { args: ["--shim-timeout-ms", "3000"] });
  t.same(await d.health(), [], "healthy before");
  const conn = await d.connect();
  const byMethod: Record<string, Record<number, number>> = {};
  const samples: Record<string, string> = {};

  for (const r of loadRegressions<DaemonInput>("daemon-messages")) {
    const res = await runInput(conn.client, d.namespace, r.input);
    t.same(res.problems, [], `regression ${path.basename(r.file)}: ${r.note.split("\n")[0]}`);
  }

  await campaign(t, {
    target: "daemon-messages",
    arb: daemonInputArb(),
    ms: BUDGET * 0.7,
    shrinkMs: 20000,
    run: async (input) => {
      const r = await runInput(conn.client, d.namespace, input);
      const key = `${input.service.split(".").at(-1)}.${input.method}`;
      const counts = byMethod[key] ?? {};
      byMethod[key] = counts;
      counts[r.code] = (counts[r.code] ?? 0) + 1;
      if (process.env.TSR_FUZZ_DEBUG)
        samples[`${key} ${r.code}`] ??= `${input.how}: ${r.message.slice(0, 120)}`;
      if (!snapshot(d.pid).alive) r.problems.push("tsruncd died");
      return r.problems;
    },
    after: async () => {
      // The daemon still answers a plain call at once (a stalled event loop would not).
      const t0 = Date.now();
      const e = await conn.containers.list({ filters: [] }, conn.o(3000)).catch((err: Error) => err);
      if (e instanceof Error) return `a plain List failed after the input: ${e.message}`;
      return Date.now() - t0 > 2000 ? `a plain List took ${Date.now() - t0} ms after the input` : undefined;
    },
  });
  t.comment(`answers by method and code: ${JSON.stringify(byMethod)}`);
  if (process.env.TSR_FUZZ_DEBUG) t.comment(JSON.stringify(samples, null, 1));

  t.same(
    await removeAll(d, conn),
    [],
    "every container of the campaign removed through the API, no bundle left",
  );
  await conn.client.close();
  t.same(await d.health(), [], "the daemon is healthy after the campaign");
});

t.test("directed: filters that backtrack, labels at the limits, streams abandoned", async (t) => {
  const d = await liveDaemon(t);
  const c = await d.connect();
  const o = c.o(5000);
  const spec = { typeUrl: OciSpecType.typeUrl, value: Buffer.from("{}") };
  const runtime = { name: FAIL_SHIM };
  await c.containers.create(
    { container: { id: "r1", runtime, spec, labels: { x: `${"a".repeat(3000)}!` } } },
    o,
  );
  for (const filter of [
    "labels.x~=^(a+)+$",
    "labels.x~=(a|a)*b",
    "labels.x~=(?i)^(A|AA)+$",
    "labels.x~=(.*a){12}$",
    "labels.x~=/(a*)*b/",
  ]) {
    const t0 = Date.now();
    const r = await c.containers.list({ filters: [filter] }, o).catch((e: Error) => e);
    const ms = Date.now() - t0;
    t.ok(
      !(r instanceof Error) || (r as TtrpcError).code === 3,
      `List ${filter}: ${r instanceof Error ? r.message : "answered"}`,
    );
    t.ok(ms < 1000, `List ${filter} answered in ${ms} ms`);
  }
  // The same through Subscribe: the filter runs on every publish.
  const ac = new AbortController();
  const sub = (async () => {
    for await (const _ of c.events.subscribe({ filters: ["topic~=^(/+a+)+$"] }, { signal: ac.signal })) {
      // nothing to read
    }
  })().catch(() => {});
  await new Promise((r) => setTimeout(r, 100));
  let t0 = Date.now();
  await c.events.publish(
    { topic: `/${"a".repeat(200)}/b`, event: { typeUrl: "types.containerd.io/x", value: new Uint8Array(0) } },
    o,
  );
  await c.containers.list({ filters: [] }, o);
  t.ok(
    Date.now() - t0 < 1000,
    `a publish matched against a backtracking Subscribe filter: ${Date.now() - t0} ms`,
  );
  ac.abort();
  await sub;
  // ListStream and Subscribe opened by the hundred on one connection and abandoned at once.
  const aborts = Array.from({ length: 200 }, () => new AbortController());
  await Promise.all(
    aborts.map(async (a, i) => {
      const desc = i % 2 ? EventsService : ContainersService;
      const method = i % 2 ? "Subscribe" : "ListStream";
      const s = c.client.openStream(desc.name, method, "server", new Uint8Array(0), {
        ...o,
        signal: a.signal,
      });
      setTimeout(() => a.abort(), i % 5);
      try {
        for await (const _ of s.messages) {
          // abandoned
        }
      } catch {
        // canceled
      }
    }),
  );
  // containerd's label limit: key and value together at most 4096 bytes.
  const code = (p: Promise<unknown>) =>
    p.then(
      () => 0,
      (e: TtrpcError) => e.code,
    );
  t.equal(
    await code(
      c.containers.create({ container: { id: "r2", runtime, spec, labels: { x: "a".repeat(4095) } } }, o),
    ),
    0,
    "a label of 4096 bytes",
  );
  t.equal(
    await code(
      c.containers.create({ container: { id: "r3", runtime, spec, labels: { x: "a".repeat(4096) } } }, o),
    ),
    3,
    "a label of 4097 bytes: InvalidArgument",
  );
  // 10,000 labels and a 1 MiB spec: stored, listed, deleted, within the message limit.
  const many = Object.fromEntries(Array.from({ length: 10000 }, (_, i) => [`l${i}`, "v"]));
  t0 = Date.now();
  t.equal(
    await code(c.containers.create({ container: { id: "r4", runtime, spec, labels: many } }, o)),
    0,
    "10,000 labels",
  );
  t.equal(
    await code(
      c.containers.create(
        { container: { id: "r5", runtime, spec: { ...spec, value: Buffer.alloc(1 << 20, 0x20) } } },
        o,
      ),
    ),
    0,
    "a 1 MiB spec",
  );
  t.equal((await c.containers.list({ filters: [] }, o)).containers.length, 5, "listed (with the sentinel)");
  t.ok(Date.now() - t0 < 3000, `in ${Date.now() - t0} ms`);
  // Finding (no bound asserted): Lists are synchronous work on the one event loop, so 20 Lists of
  // these records at once delay another connection's call by their whole cost.
  const other = await d.connect();
  const lists = Array.from({ length: 20 }, () =>
    c.containers.list({ filters: [] }, c.o(60_000)).catch(() => {}),
  );
  t0 = Date.now();
  await other.containers.get({ id: "r1" }, other.o(60_000));
  t.comment(`a Get on another connection behind 20 Lists of 10,000 labels and 1 MiB: ${Date.now() - t0} ms`);
  await Promise.all(lists);
  await other.client.close();
  for (const id of ["r1", "r2", "r4", "r5"]) await c.containers.delete({ id }, o);
  await c.client.close();
  t.same(await d.health(), [], "healthy");
});

t.teardown(() => {
  for (const [k, v] of Object.entries(executed)) t.comment(`inputs executed: ${k} ${v}`);
});
