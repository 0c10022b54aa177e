// Hostile and broken shims against a live tsruncd (issue 10, item 10): each fake shim in
// test/fixtures/hostile-shims breaks the shim contract in one way. For each, `tsctl run` must fail
// with one clear line in bounded time, the task record and the bundle must be gone, another
// container must be created, started and deleted with our real shim meanwhile (during the hang,
// for the shims that hang), the sentinel container and its pending Wait must be untouched, the
// daemon's fd count must come back to its baseline and no fake shim process may be left.
//
// The daemon runs with --shim-timeout-ms 2000 (every deadline of a shim's creation capped at
// 2 s) so that the shims that hang cost seconds, not the default 10 s start/connect and 60 s
// Create.
import * as fs from "node:fs";
import * as path from "node:path";
import type { eventsapi } from "@tsrunc/protocol/daemon";
import { OciSpecType, events as shimEvents, tasktypes, unpackAnyAs } from "@tsrunc/protocol/shim";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import t from "tap";
import { HOSTILE_DIR, type LiveDaemon, liveDaemon, SENTINEL } from "./fuzz/lib/daemon-live.js";
import { waitFor } from "./helpers/wait.js";

const CAP_MS = 2000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 0,
    (e: unknown) => (e instanceof TtrpcError ? e.code : -1),
  );
const hostile = (name: string) => path.join(HOSTILE_DIR, name);

interface Case {
  name: string;
  /** The runtime name given to tsctl run --runtime. */
  runtime: string;
  /** What the one line of tsctl's error must say. */
  expect: RegExp;
  /** The shim hangs: the bystander container must be done while it still does. */
  hangs?: boolean;
  /** Upper bound on the failed run (ms). */
  boundMs?: number;
  /** A process the daemon cannot know of is expected to survive (the test kills it): why. */
  escapes?: string;
}

const cases: Case[] = [
  {
    name: "garbage",
    // Through the daemon's PATH, as containerd resolves runtime names.
    runtime: "io.containerd.garbage.v2",
    expect: /containerd-shim-garbage-v2 start printed no address: unix:\/\//,
  },
  { name: "huge-output", runtime: hostile("huge-output"), expect: /start: output too long/ },
  {
    name: "fail",
    runtime: hostile("fail"),
    expect: /start failed \(exit 1\): hostile-shim: cannot start: no such thing as a free lunch/,
  },
  {
    name: "hang-start",
    runtime: hostile("hang-start"),
    expect: /no address within the deadline/,
    hangs: true,
  },
  {
    name: "pipe-holder",
    runtime: hostile("pipe-holder"),
    expect: /start: exited but its output stayed open past the deadline/,
    hangs: true,
  },
  {
    name: "pipe-holder-setsid",
    runtime: hostile("pipe-holder-setsid"),
    expect: /start: exited but its output stayed open past the deadline/,
    hangs: true,
    escapes: "a child of start in a session of its own: no kill of start's process group reaches it",
  },
  {
    name: "no-listener",
    runtime: hostile("no-listener"),
    expect: /shim \S+\/no-listener: ttrpc: cannot connect to \S+\/nothing-listens-here\.sock/,
  },
  {
    name: "hang-create",
    runtime: hostile("hang-create"),
    expect: /shim \S+\/hang-create: ttrpc: containerd.task.v2.Task\/Create: deadline exceeded/,
    hangs: true,
  },
  {
    name: "wedged",
    runtime: hostile("wedged"),
    expect: /shim \S+\/wedged: ttrpc: containerd.task.v2.Task\/Create: deadline exceeded/,
    hangs: true,
    escapes:
      "a server that answers nothing, Shutdown included: the daemon knows no pid it could trust to kill (shim.pid is the shim's word; SO_PEERCRED on the connection would be the kernel's)",
  },
  {
    name: "wrong-type",
    runtime: hostile("wrong-type"),
    expect: /shim \S+\/wrong-type: ttrpc: cannot decode response payload/,
  },
  {
    name: "huge-reply",
    runtime: hostile("huge-reply"),
    expect: /shim \S+\/huge-reply: ttrpc: response of \d+ bytes exceeds 4194304/,
  },
  {
    name: "drop-conn",
    runtime: hostile("drop-conn"),
    expect: /shim \S+\/drop-conn: ttrpc: connection closed/,
  },
  {
    name: "hang-delete",
    runtime: hostile("hang-delete"),
    expect: /start failed \(exit 1\): hostile-shim: start refused/,
    boundMs: 3 * CAP_MS + 2000,
  },
  { name: "forge-events", runtime: hostile("forge-events"), expect: /forged events for victim/ },
];

t.setTimeout(240_000);

t.test("hostile shims cost one failed container each", async (t) => {
  const d: LiveDaemon = await liveDaemon(t, {
    args: ["--shim-timeout-ms", String(CAP_MS)],
    links: { "containerd-shim-garbage-v2": hostile("garbage") },
  });
  t.same(await d.health(), [], "healthy before");

  // Every envelope the daemon relays, from the start (for forge-events).
  const seen: eventsapi.Envelope[] = [];
  const subAbort = new AbortController();
  const subConn = await d.connect();
  const sub = (async () => {
    for await (const e of subConn.events.subscribe({ filters: [] }, { signal: subAbort.signal }))
      seen.push(e);
  })().catch(() => {});
  await sleep(100);
  await d.rebase();

  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const id = `h-${c.name}`;
      const started = Date.now();
      let hostileDone = 0;
      const run = d.env
        .tsctl(
          ["run", "--rm", "--null-io", "--runtime", c.runtime, "--rootfs", d.env.rootfs(id), id, "/bin/true"],
          { timeoutMs: 90_000 },
        )
        .then((r) => {
          hostileDone = Date.now();
          return r;
        });
      // Meanwhile, another container's whole life with our shim.
      await sleep(c.hangs ? 400 : 0);
      const by = `by-${c.name}`;
      const b = await d.env.tsctl([
        "run",
        "--rm",
        "--null-io",
        "--rootfs",
        d.env.rootfs(by),
        by,
        "/bin/sh",
        "-c",
        "exit 3",
      ]);
      const bystanderDone = Date.now();
      t.equal(b.exitCode, 3, `a container with our shim ran meanwhile (${b.stderr.trim()})`);
      const r = await run;
      const ms = hostileDone - started;
      t.comment(`${c.name}: failed in ${ms} ms; bystander done after ${bystanderDone - started} ms`);
      if (c.hangs)
        t.ok(bystanderDone < hostileDone, "the bystander finished while the hostile create still hung");
      t.not(r.exitCode, 0, "tsctl run failed");
      const lines = r.stderr.trim().split("\n");
      t.equal(lines.length, 1, `one line of error: ${JSON.stringify(r.stderr.slice(0, 600))}`);
      t.match(r.stderr, c.expect, "a clear error");
      // biome-ignore lint/suspicious/noControlCharactersInRegex: what must not reach a terminal
      t.notMatch(r.stderr.trim(), /[\u0000-\u0008\u000b-\u001f\u007f\u009b]/, "no control characters");
      t.ok(ms < (c.boundMs ?? 20_000), `bounded (${ms} ms)`);

      const o = d.main.o(5000);
      t.equal(await codeOf(d.main.tasks.get({ containerId: id }, o)), Code.NotFound, "no task record");
      t.equal(await codeOf(d.main.containers.get({ id }, o)), Code.NotFound, "no container (--rm)");
      t.notOk(fs.existsSync(path.join(d.state, d.namespace, id)), "no bundle");
      if (c.escapes) {
        const left = d.hostileLeft();
        t.ok(left.length > 0, `finding: a process survives: ${c.escapes}`);
        for (const p of left) process.kill(p.pid, "SIGKILL");
        // A SIGKILLed process is listed until it has exited (slow under load): wait for that,
        // or the health check below would count the one we just killed.
        await waitFor(() => d.hostileLeft().length === 0, {
          what: "the surviving fake shim to exit after SIGKILL",
          timeoutMs: 10_000,
        });
      }
      const problems = await d.health();
      t.same(
        problems,
        [],
        "daemon healthy: sentinel and its Wait untouched, fds at baseline, no fake shim left",
      );
      // Whatever a case leaves would fail every case after it: clear it (it was reported above).
      for (const p of d.hostileLeft()) process.kill(p.pid, "SIGKILL");
      if (problems.length) await d.rebase();
    });
  }

  // Foreign events: the forge-events shim forwarded /tasks/exit and /tasks/delete for "victim"
  // (the sentinel, which it does not own) in our namespace and in "default" to TTRPC_ADDRESS,
  // the daemon's own socket. The daemon cannot tell which shim (or which client: the socket is
  // one) a connection belongs to without SO_PEERCRED, so it relays them as they came.
  const forged = seen.filter((e) => {
    if (e.topic !== "/tasks/exit" || !e.event) return false;
    const ex = unpackAnyAs(e.event, shimEvents.TaskExit);
    return ex.containerId === SENTINEL && ex.exitStatus === 42;
  });
  t.same(
    forged.map((e) => e.namespace).sort(),
    [d.namespace, "default"].sort(),
    "finding: forged /tasks/exit envelopes are relayed to subscribers as they came, namespace and all",
  );
  t.same(
    await d.health(),
    [],
    "finding: the forged exit changed nothing: the sentinel is RUNNING, its Wait pending",
  );
  subAbort.abort();
  await sub;
});

t.test("a shim that answers Create, then nothing ever again", async (t) => {
  const d = await liveDaemon(t, { args: ["--shim-timeout-ms", String(CAP_MS)] });
  const { main } = d;
  const id = "late";
  const spec = { ociVersion: "1.0.2", process: { args: ["/bin/true"], cwd: "/" }, root: { path: "rootfs" } };
  await main.containers.create(
    {
      container: {
        id,
        runtime: { name: hostile("late-wedge") },
        spec: { typeUrl: OciSpecType.typeUrl, value: Buffer.from(JSON.stringify(spec)) },
      },
    },
    main.o(),
  );
  const created = await main.tasks.create({ containerId: id }, main.o());
  t.ok(created.pid > 0, "Tasks.Create answered (the shim's last answer)");

  // Other containers' requests meanwhile: the sentinel's at once, the namespace's list bounded.
  let ms = Date.now();
  const got = await main.tasks.get({ containerId: SENTINEL }, main.o());
  t.equal(got.process?.status, tasktypes.Status.RUNNING, "Tasks.Get of another container");
  t.ok(Date.now() - ms < 1000, `answered at once (${Date.now() - ms} ms)`);
  ms = Date.now();
  const list = await main.tasks.list({}, main.o(15_000)).catch((e: Error) => e);
  const listMs = Date.now() - ms;
  t.comment(`Tasks.List with a wedged shim in the namespace: ${listMs} ms`);
  t.notOk(list instanceof Error, `Tasks.List answers despite the wedged shim (${String(list)})`);
  if (!(list instanceof Error)) {
    const by = new Map(list.tasks.map((p) => [p.id, p.status]));
    t.equal(by.get(SENTINEL), tasktypes.Status.RUNNING, "the sentinel listed RUNNING");
    t.equal(by.get(id), tasktypes.Status.UNKNOWN, "the wedged task listed UNKNOWN");
  }
  t.ok(listMs < 7000, "Tasks.List bounded by the per-shim State deadline (5 s)");
  const by = await d.env.tsctl([
    "run",
    "--rm",
    "--null-io",
    "--rootfs",
    d.env.rootfs("by"),
    "by",
    "/bin/true",
  ]);
  t.equal(by.exitCode, 0, `a container with our shim ran meanwhile ${by.stderr}`);

  // A restart: the wedged shim must not stall the boot (containerd 1.6's known failure) nor the
  // requests for other containers while boot deals with it.
  await d.env.kill();
  const t0 = Date.now();
  await d.env.start(["--shim-timeout-ms", String(CAP_MS)]);
  t.comment(`restart with a wedged shim: serving after ${Date.now() - t0} ms`);
  const fresh = await d.connect();
  ms = Date.now();
  const sentinel = await fresh.tasks.get({ containerId: SENTINEL }, fresh.o());
  t.equal(sentinel.process?.status, tasktypes.Status.RUNNING, "the sentinel was reattached, RUNNING");
  t.ok(Date.now() - ms < 2000, `and answered while boot dealt with the wedged shim (${Date.now() - ms} ms)`);
  const after = await waitFor(
    async () => {
      const p = (await fresh.tasks.get({ containerId: id }, fresh.o())).process;
      return p?.status === tasktypes.Status.STOPPED ? p : undefined;
    },
    { what: "the wedged task recorded stopped", timeoutMs: 20_000, intervalMs: 100 },
  );
  const reconcileMs = Date.now() - t0;
  t.comment(`the wedged shim reconciled ${reconcileMs} ms after the restart`);
  t.ok(reconcileMs < 15_000, "boot bounded (connect 2 s, Connect 5 s, delete 5 s)");
  t.equal(after.exitStatus, 0, "recorded stopped, with the exit status its delete verb printed (none: 0)");
  await fresh.tasks.delete({ containerId: id }, fresh.o());
  await fresh.containers.delete({ id }, fresh.o());
  t.notOk(fs.existsSync(path.join(d.state, d.namespace, id)), "no bundle");
  const left = d.hostileLeft();
  t.equal(
    left.length,
    1,
    "finding: the wedged server survives: the daemon knows no pid it could trust to kill (SO_PEERCRED would give one)",
  );
  for (const p of left) process.kill(p.pid, "SIGKILL");
});
