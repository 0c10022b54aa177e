// Message-level fuzzing of a live tsruncd: every Containers, Tasks and Events method (and the
// shims' Events/Forward) gets structured hostile requests, mutated and wrong-typed bodies,
// protobuf soup and random bytes (lib/daemon-arbs.ts), in well-formed ttrpc envelopes, with the
// namespace in the request metadata missing, the test's, or hostile; server streams (ListStream,
// Subscribe) are read for a moment and abandoned. Each must be answered promptly with a proper
// status (OK or containerd's errdefs codes; Unknown only from a shim), never with a JS error.
// Afterwards every container the campaign made is removed through the API, no bundle is left,
// and the daemon is healthy (lib/daemon-live.ts). Saved failures
// (test/fuzz/regressions/daemon-messages/) are replayed first; directed cases follow.
//
// The image services (Images, Snapshots, ImageTools) get a campaign of their own on a daemon of
// their own (lib/image-arbs.ts): Pull (a server stream, pointed only at 127.0.0.1:1 where nothing
// listens: lib/pull-guard.ts), Import (a client stream of small archives, mutated archives and
// random bytes, cut into chunks, closed or abandoned), Export and Snapshots.List (server streams,
// read for a moment and abandoned), Config, Prune, records and snapshots. The same oracle, with
// the registry's and content store's codes allowed (never Unknown or Internal); afterwards every
// image and snapshot is removed through the API, Prune collects every blob, nothing is left in
// the content store or the snapshotter, the disk use stayed bounded, and the daemon is healthy.
// Directed: Import, Export, Pull and Snapshots.List streams opened by the dozen and abandoned.
// containerd's Content and Diff are in the same campaign (lib/image-arbs.ts: Write streams of
// right and twisted ingests, closed or abandoned; Info/Update/List/Delete/Read/Status/
// ListStatuses/Abort; Diff.Apply into the campaign's snapshots by their mounts, or hostile
// mounts), with OutOfRange also proper for them; directed, Write streams abandoned by the dozen
// and on connections that go away, after which their refs resume and nothing is left.
import * as fs from "node:fs";
import * as path from "node:path";
import {
  ContainersService,
  ContentService,
  DiffService,
  EventsService,
  ImagesService,
  ImageToolsService,
  LeasesService,
  SnapshotsService,
} from "@tsrunc/protocol/daemon";
import { OciSpecType } from "@tsrunc/protocol/shim";
import { type Client, type ClientStub, TtrpcError } from "@tsrunc/ttrpc";
import t from "tap";
import { waitFor } from "../helpers/wait.js";
import { campaign, executed, fileBudgetMs, loadRegressions } from "./lib/campaign.js";
import {
  type DaemonInput,
  daemonInputArb,
  EXTRA_NAMESPACES,
  FAIL_SHIM,
  nsMetadata,
} from "./lib/daemon-arbs.js";
import { type DaemonConn, type LiveDaemon, liveDaemon, SENTINEL } from "./lib/daemon-live.js";
import { DAEMON_PROPER, daemonMethods, IMAGE_PROPER, imageMethods } from "./lib/daemon-profile.js";
import { snapshot } from "./lib/health.js";
import {
  ARCHIVES,
  contentMethods,
  IMAGE_NAMESPACES,
  type ImageInput,
  imageInputArb,
} from "./lib/image-arbs.js";
import { DEAD_REGISTRY, deadRegistryRefuses, unsafeCall } from "./lib/pull-guard.js";

const BUDGET = fileBudgetMs(10000);
t.setTimeout(Math.max(180_000, BUDGET * 3));

const JS_ERROR =
  /TypeError|ReferenceError|RangeError|SyntaxError|Cannot read propert|is not a function|is not iterable|Maximum call stack/;

/** Sends one input; returns the status code and the problems with the answer. */
async function runInput(
  client: Client,
  testNs: string,
  input: ImageInput,
): Promise<{ code: number; message: string; problems: string[] }> {
  // The last safety net: an input the arbitraries failed to sanitize is never sent.
  if (unsafeCall(input.service, input.method, input.payload))
    throw new Error(`refusing to send a Pull that could reach the network (${input.how})`);
  const metadata = nsMetadata(input.ns, testNs);
  const content = contentMethods.get(input.service)?.get(input.method);
  const image = imageMethods.get(input.service)?.get(input.method) ?? content;
  const m = image ?? daemonMethods.get(input.service)?.get(input.method);
  if (input.applyTo !== undefined && input.applyDiff) {
    // Diff.Apply with the mounts the daemon gave the key (hostile ones when it has none).
    const mounts = await client
      .service(SnapshotsService)
      .mounts({ snapshotter: "overlayfs", key: input.applyTo }, { metadata, timeoutMs: 8000 })
      .then(
        (r) => r.mounts,
        () => [{ type: "bind", source: "/", target: "", options: ["rbind"] }],
      );
    input = {
      ...input,
      payload: DiffService.methods.apply.requestType.encode({
        diff: { ...input.applyDiff, annotations: {} },
        mounts,
      }),
    };
  }
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
  } else if (m?.kind === "bidi") {
    // Content.Write: the messages, read as they are answered; closed, or abandoned after a while.
    const ac = new AbortController();
    const s = client.openStream(input.service, input.method, "bidi", undefined, {
      metadata,
      signal: ac.signal,
      timeoutMs: 8000,
    });
    const reading = (async () => {
      for await (const _ of s.messages) {
        // answers
      }
    })();
    reading.catch(() => {});
    try {
      for (const chunk of [input.payload, ...(input.chunks ?? [])]) await s.send(chunk);
    } catch {
      // the server ended the stream early (its answer says why)
    }
    if (input.close !== false) {
      s.closeSend();
      await reading.catch(fail);
    } else {
      await new Promise((r) => setTimeout(r, input.streamMs));
      ac.abort();
      await reading.catch(fail);
    }
    if (code === 1 && ac.signal.aborted) code = 0;
  } else if (m?.kind === "client") {
    // The request's messages, then the sending side closed (or the stream abandoned).
    const ac = new AbortController();
    const s = client.openStream(input.service, input.method, "client", undefined, {
      metadata,
      signal: ac.signal,
      timeoutMs: 8000,
    });
    try {
      for (const chunk of [input.payload, ...(input.chunks ?? [])]) await s.send(chunk);
      if (input.close !== false) {
        s.closeSend();
        await s.response;
      } else {
        await new Promise((r) => setTimeout(r, input.streamMs));
        ac.abort();
        await s.response.catch(() => {});
      }
    } catch (e) {
      fail(e);
    }
    if (code === 1 && ac.signal.aborted) code = 0;
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
  // containerd's Content answers OutOfRange for a read past the end or a write off the offset.
  const ok = image
    ? IMAGE_PROPER.has(code) || (content !== undefined && code === 11)
    : DAEMON_PROPER.has(code) || (code === 2 && input.service.endsWith(".Tasks"));
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

// ---------------------------------------------------------------------------------------------
// the image services

interface ImageConn {
  images: ClientStub<typeof ImagesService>;
  snapshots: ClientStub<typeof SnapshotsService>;
  tools: ClientStub<typeof ImageToolsService>;
}
const imageConn = (c: DaemonConn): ImageConn => ({
  images: c.client.service(ImagesService),
  snapshots: c.client.service(SnapshotsService),
  tools: c.client.service(ImageToolsService),
});

/** Files under `dir` (recursively) and their total size. */
function du(dir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  const walk = (p: string) => {
    let ents: fs.Dirent[];
    try {
      ents = fs.readdirSync(p, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      const q = path.join(p, e.name);
      if (e.isDirectory()) walk(q);
      else {
        files++;
        try {
          bytes += fs.lstatSync(q).size;
        } catch {
          // gone meanwhile
        }
      }
    }
  };
  walk(dir);
  return { files, bytes };
}

/** Every image record and snapshot of the campaign's namespaces removed through the API, then Prune. */
/**
 * Removes every image record and snapshot through the API, then (unless `onlyRecords`) prunes and
 * checks that the store is empty. Returns what could not be removed.
 */
async function removeAllImages(d: LiveDaemon, c: DaemonConn, onlyRecords = false): Promise<string[]> {
  const ic = imageConn(c);
  const problems: string[] = [];
  const namespaces = [d.namespace, ...IMAGE_NAMESPACES];
  for (const ns of namespaces) {
    const o = { metadata: { "containerd-namespace": ns }, timeoutMs: 20_000 };
    for (const img of (await ic.images.list({ filters: [] }, o)).images)
      await ic.images
        .delete({ name: img.name }, o)
        .catch((e: Error) => problems.push(`delete image ${ns}/${img.name}: ${e.message}`));
    // Children before parents: passes until none is left. A pass that removes nothing waits and
    // tries again for a while: an import abandoned a moment ago may still be unpacking on top of
    // a snapshot (its active child goes when the import fails), which Remove rightly refuses.
    let stalled = 0;
    for (let pass = 0; pass < 60; pass++) {
      const keys: string[] = [];
      for await (const r of ic.snapshots.list({ snapshotter: "overlayfs", filters: [] }, o))
        keys.push(...r.info.map((i) => i.name));
      if (!keys.length) break;
      let removed = 0;
      for (const key of keys)
        await ic.snapshots.remove({ snapshotter: "overlayfs", key }, o).then(
          () => removed++,
          () => {},
        );
      if (!removed && ++stalled < 25) {
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      if (!removed) {
        problems.push(`snapshots of ${ns} that cannot be removed: ${keys.join(" ").slice(0, 500)}`);
        break;
      }
    }
  }
  if (onlyRecords) return problems;
  for (const ns of namespaces)
    await ic.tools
      .prune({ all: true }, { metadata: { "containerd-namespace": ns }, timeoutMs: 30_000 })
      .catch((e: Error) => problems.push(`prune ${ns}: ${e.message}`));
  const root = path.join(d.env.root.path, "root");
  const blobs = du(path.join(root, "content/blobs"));
  if (blobs.files) {
    const dir = path.join(root, "content/blobs/sha256");
    const left = fs
      .readdirSync(dir)
      .map((h) => fs.readFileSync(path.join(dir, h)).subarray(0, 120).toString("latin1"));
    problems.push(
      `${blobs.files} blob(s) left in the content store (${blobs.bytes} bytes): ${left.join(" | ")}`,
    );
  }
  const ingest = du(path.join(root, "content/ingest"));
  if (ingest.files) problems.push(`${ingest.files} ingest file(s) left (${ingest.bytes} bytes)`);
  for (const ns of namespaces) {
    const o = { metadata: { "containerd-namespace": ns }, timeoutMs: 10_000 };
    const n = (await ic.images.list({ filters: [] }, o)).images.length;
    if (n) problems.push(`${n} image record(s) left in ${ns}`);
    let snaps = 0;
    for await (const r of ic.snapshots.list({ snapshotter: "overlayfs", filters: [] }, o))
      snaps += r.info.length;
    if (snaps) problems.push(`${snaps} snapshot(s) left in ${ns}`);
  }
  return problems;
}

t.test("hostile Images/Snapshots/ImageTools requests against a live tsruncd", async (t) => {
  t.ok(await deadRegistryRefuses(), `nothing listens on ${DEAD_REGISTRY} (where every fuzzed Pull goes)`);
  const d = await liveDaemon(t);
  t.same(await d.health(), [], "healthy before");
  const conn = await d.connect();
  const ic = imageConn(conn);
  const byMethod: Record<string, Record<number, number>> = {};
  const samples: Record<string, string> = {};
  const root = path.join(d.env.root.path, "root");
  let peak = 0;

  for (const r of loadRegressions<ImageInput>("daemon-image-messages")) {
    const res = await runInput(conn.client, d.namespace, r.input);
    t.same(res.problems, [], `regression ${path.basename(r.file)}: ${r.note.split("\n")[0]}`);
  }

  let n = 0;
  await campaign(t, {
    target: "daemon-image-messages",
    arb: imageInputArb(),
    ms: BUDGET * 0.7,
    shrinkMs: 20000,
    run: async (input) => {
      const r = await runInput(conn.client, d.namespace, input);
      const key = `${input.service.split(".").at(-1)}.${input.method}`;
      const counts = byMethod[key] ?? {};
      byMethod[key] = counts;
      counts[r.code] = (counts[r.code] ?? 0) + 1;
      if (process.env.TSR_FUZZ_DEBUG)
        samples[`${key} ${r.code}`] ??= `${input.how}: ${r.message.slice(0, 160)}`;
      if (!snapshot(d.pid).alive) r.problems.push("tsruncd died");
      // The disk: the campaign's imports are bounded; so must be what the daemon keeps of them.
      if (++n % 25 === 0) {
        peak = Math.max(peak, du(root).bytes);
        if (peak > 512 << 20) r.problems.push(`the daemon's root holds ${peak >> 20} MiB`);
      }
      return r.problems;
    },
    after: async () => {
      const t0 = Date.now();
      const e = await ic.images.list({ filters: [] }, conn.o(3000)).catch((err: Error) => err);
      if (e instanceof Error) return `a plain Images.List failed after the input: ${e.message}`;
      return Date.now() - t0 > 2000
        ? `a plain Images.List took ${Date.now() - t0} ms after the input`
        : undefined;
    },
  });
  peak = Math.max(peak, du(root).bytes);
  t.comment(`answers by method and code: ${JSON.stringify(byMethod)}`);
  t.comment(`the daemon's root at most ${(peak / (1 << 20)).toFixed(1)} MiB during the campaign`);
  if (process.env.TSR_FUZZ_DEBUG) t.comment(JSON.stringify(samples, null, 1));

  // The campaign may have committed a snapshot of its own under the image's chain id (it aims at
  // LAYER_CHAIN as a key on purpose); unpack then trusts it, as containerd's does, and Config reads
  // a tree without /etc/passwd. The directed cases below start from no images and no snapshots.
  t.same(await removeAllImages(d, conn, true), [], "the campaign's images and snapshots removed");

  // Directed: streams of every kind opened by the dozen and abandoned at once or midway.
  const o = conn.o(20_000);
  const archive = ARCHIVES[0]!.bytes;
  const imported = await (async () => {
    const call = ic.tools.import(o);
    await call.send({ data: archive, options: { unpack: true } });
    call.closeSend();
    return call.response;
  })();
  t.same(
    imported.images.map((i) => i.name),
    ["fz.local/img:1"],
    "a well-formed archive still imports",
  );
  // An Import stalled mid-archive (after storing the archive's first blobs) whose connection then
  // goes away, while another Import of the same archive (which finds those blobs stored) succeeds:
  // the failed one must not take the other's content with it (it did: Config answered NotFound).
  const stalled = await d.connect();
  const st = stalled.client.openStream(ImageToolsService.name, "Import", "client", undefined, stalled.o());
  st.response.catch(() => {});
  await st.send(ImageToolsService.methods.import.requestType.encode({ data: archive.subarray(0, 30000) }));
  await new Promise((r) => setTimeout(r, 200));
  const again = ic.tools.import(o);
  await again.send({ data: archive });
  again.closeSend();
  await again.response;
  await stalled.client.close();
  await new Promise((r) => setTimeout(r, 300));
  const same = await ic.tools.config({ name: "fz.local/img:1" }, o).catch((e: Error) => e);
  t.notOk(
    same instanceof Error,
    `a failed concurrent import leaves the other's content${same instanceof Error ? `: ${same.message}` : ""}`,
  );
  const other = await d.connect();
  const abandon = async (i: number, open: (signal: AbortSignal) => Promise<void>) => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), i % 7);
    await open(ac.signal).catch(() => {});
  };
  await Promise.all(
    Array.from({ length: 40 }, (_, i) =>
      abandon(i, async (signal) => {
        // Half an archive, then nothing: the import waits for the rest until abandoned.
        const s = other.client.openStream(ImageToolsService.name, "Import", "client", undefined, {
          ...other.o(20_000),
          signal,
        });
        await s.send(
          ImageToolsService.methods.import.requestType.encode({ data: archive.subarray(0, 512 * (1 + i)) }),
        );
        await s.response;
      }),
    ),
  );
  await Promise.all(
    Array.from({ length: 40 }, (_, i) =>
      abandon(i, async (signal) => {
        const [svc, method, req] =
          i % 3 === 0
            ? [
                ImageToolsService,
                "Export",
                ImageToolsService.methods.export.requestType.encode({ names: ["fz.local/img:1"] }),
              ]
            : i % 3 === 1
              ? [
                  SnapshotsService,
                  "List",
                  SnapshotsService.methods.list.requestType.encode({ snapshotter: "overlayfs" }),
                ]
              : [
                  ImageToolsService,
                  "Pull",
                  ImageToolsService.methods.pull.requestType.encode({ ref: `${DEAD_REGISTRY}/fz/x:${i}` }),
                ];
        const s = other.client.openStream(svc.name, method, "server", req, { ...other.o(20_000), signal });
        for await (const _ of s.messages) {
          // abandoned
        }
      }),
    ),
  );
  // Content.Write streams abandoned mid-ingest by the dozen (each its own ref, 1 KiB written of 4).
  const writeCodec = ContentService.methods.write.requestType;
  const ingestBytes = Buffer.alloc(4096, 0x77);
  const openWrite = (c: DaemonConn, signal?: AbortSignal) => {
    const s = c.client.openStream(ContentService.name, "Write", "bidi", undefined, {
      ...c.o(20_000),
      ...(signal ? { signal } : {}),
    });
    const reading = (async () => {
      for await (const _ of s.messages) {
        // answers
      }
    })();
    reading.catch(() => {});
    return { s, reading };
  };
  await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      abandon(i, async (signal) => {
        const { s, reading } = openWrite(other, signal);
        await s.send(writeCodec.encode({ action: 0, ref: `fz-abandoned-${i}`, total: 4096 }));
        await s.send(writeCodec.encode({ action: 1, offset: 0, data: ingestBytes.subarray(0, 1024) }));
        await reading;
      }),
    ),
  );
  // Imports whose connection goes away mid-archive.
  const gone = await Promise.all(Array.from({ length: 10 }, () => d.connect()));
  await Promise.all(
    gone.map(async (g, i) => {
      const s = g.client.openStream(ImageToolsService.name, "Import", "client", undefined, g.o(20_000));
      s.response.catch(() => {});
      await s.send(
        ImageToolsService.methods.import.requestType.encode({ data: archive.subarray(0, 4096 * (i + 1)) }),
      );
    }),
  );
  // Writes whose connection goes away mid-ingest, under a lease (so that a GC meanwhile, e.g. after
  // the failed imports above, keeps their ingests: unleased ones it removes once unlocked).
  const leasesApi = other.client.service(LeasesService);
  await leasesApi.create({ id: "fz-lease", labels: {} }, other.o(5000));
  await Promise.all(
    gone.map(async (g, i) => {
      const o = g.o(20_000);
      const s = g.client.openStream(ContentService.name, "Write", "bidi", undefined, {
        ...o,
        metadata: { ...o.metadata, "containerd-lease": "fz-lease" },
      });
      // Each message answered before the next (as ctr's client does), so the WRITE is done when
      // the connection goes.
      const answers = s.messages[Symbol.asyncIterator]();
      await s.send(writeCodec.encode({ action: 0, ref: `fz-gone-${i}`, total: 4096 }));
      await answers.next();
      await s.send(writeCodec.encode({ action: 1, offset: 0, data: ingestBytes.subarray(0, 2048) }));
      await answers.next();
    }),
  );
  await new Promise((r) => setTimeout(r, 100));
  for (const g of gone) await g.client.close();
  await other.client.close();
  // ttrpc has no cancel frame: an Import the client abandoned on a live connection waits for more
  // chunks (holding its lease and what it stored) until its deadline or the connection ends. The
  // campaign's connection goes away now, as a peer would; what it left must then be collectable.
  await conn.client.close();
  const fresh = await d.connect();
  const fic = imageConn(fresh);
  const cfg = await fic.tools.config({ name: "fz.local/img:1" }, fresh.o(20_000));
  t.same(
    [cfg.uid, cfg.gid, cfg.additionalGids.includes(2000)],
    [1000, 1000, true],
    "Config still resolves the image's user",
  );
  // Those writers' refs are free again (their calls ended with their connections or deadlines)
  // and resume where they stopped.
  const cc = fresh.client.service(ContentService);
  const resumed = await waitFor(
    async () => {
      const call = cc.write(fresh.o(10_000));
      await call.send({ action: 0, ref: "fz-gone-0", total: 4096 });
      for await (const m of call) {
        call.closeSend();
        return m.offset;
      }
      return undefined;
    },
    { what: "the ref of a Write whose connection went away to be free", timeoutMs: 30_000, intervalMs: 500 },
  ).catch((e: Error) => e);
  t.equal(
    resumed,
    2048,
    `a Write cut by its connection going away resumes at its offset (${String(resumed)})`,
  );
  await fresh.client.service(LeasesService).delete({ id: "fz-lease", sync: false }, fresh.o(5000));
  t.comment(`the daemon's root after the campaign: ${(du(root).bytes / (1 << 20)).toFixed(1)} MiB`);

  t.same(
    await removeAllImages(d, fresh),
    [],
    "every image and snapshot removed through the API; Prune left no blob, ingest or snapshot",
  );
  // Each namespace that used a snapshotter keeps it open (a SQLite file: 3 fds), by design; and
  // `fresh` is one more connection than the baseline had.
  const slack = 3 * (1 + IMAGE_NAMESPACES.length) + 1;
  t.same(await d.health({ fdSlack: slack }), [], "the daemon is healthy after the campaign");

  // Finding (no bound asserted): the per-namespace snapshotters are never closed, so every valid
  // namespace a peer names in a Snapshots call opens one more (directory + SQLite: 3 fds) for
  // the daemon's lifetime; enough namespaces exhaust its fds.
  const before = snapshot(d.pid).fds;
  for (let i = 0; i < 30; i++)
    for await (const _ of fic.snapshots.list(
      { snapshotter: "", filters: [] },
      { metadata: { "containerd-namespace": `fzfd${i}` }, timeoutMs: 5000 },
    )) {
      // empty
    }
  t.comment(`Snapshots.List in 30 new namespaces: tsruncd fds ${before} -> ${snapshot(d.pid).fds}`);
  await fresh.client.close();
});

t.teardown(() => {
  for (const [k, v] of Object.entries(executed)) t.comment(`inputs executed: ${k} ${v}`);
});
