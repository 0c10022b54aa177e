// The reaper with real processes: orphans re-parent to us (subreaper) and are reaped with
// containerd's status encoding, while Node's own children keep their exit events.
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { execa } from "execa";
import t from "tap";
import {
  createReaper,
  isChildSubreaper,
  type ProcessExit,
  type Reaper,
  setChildSubreaper,
} from "./reaper.js";

interface Teardown {
  teardown(fn: () => unknown): void;
}

setChildSubreaper();

const started = new Set<number>(); // every orphan we made, killed at the end if still alive
t.teardown(() => {
  for (const pid of started) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
});

function startReaper(t: Teardown, options?: Parameters<typeof createReaper>[0]): Reaper {
  const reaper = createReaper(options);
  t.teardown(() => reaper.close());
  return reaper;
}

/**
 * Runs `script` in a shell orphaned at once (its parent sh exits); returns its pid. The script
 * starts only once its parent is gone: sh would reap a background job that exits before it.
 */
async function orphan(script: string): Promise<number> {
  // The outer sh expands $$ (its own pid) between the quoted parts; $PPID would not do, as the
  // inner sh may read it only after re-parenting.
  const waitForParent = "while kill -0 '$$' 2>/dev/null; do sleep 0.01; done";
  const { stdout, exitCode } = await execa("sh", [
    "-c",
    `sh -c '${waitForParent}; ${script}' </dev/null >/dev/null 2>&1 & echo $!`,
  ]);
  if (exitCode !== 0) throw new Error(`sh exited ${exitCode}`);
  const pid = Number(stdout.trim());
  started.add(pid);
  return pid;
}

function stat(pid: number): { state: string; ppid: number } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const [state, ppid] = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { state: state!, ppid: Number(ppid) };
  } catch {
    return undefined;
  }
}

async function waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function zombieChildren(): number[] {
  const zombies: number[] = [];
  for (const task of readdirSync("/proc/self/task")) {
    for (const word of readFileSync(`/proc/self/task/${task}/children`, "utf8").split(" ")) {
      const pid = Number(word);
      if (pid > 0 && stat(pid)?.state === "Z") zombies.push(pid);
    }
  }
  return zombies;
}

t.test("setChildSubreaper sets the flag", async (t) => {
  t.equal(isChildSubreaper(), true);
  const { stdout } = await execa(process.execPath, [
    "--input-type=module",
    "-e",
    `import { isChildSubreaper } from ${JSON.stringify(new URL("./reaper.js", import.meta.url).href)};
     console.log(isChildSubreaper());`,
  ]);
  t.equal(stdout, "false", "a fresh process is not a subreaper");
});

t.test("an orphan re-parents to us and is reaped with its exit code", async (t) => {
  const reaper = startReaper(t);
  const seen: ProcessExit[] = [];
  reaper.onExit((exit) => seen.push(exit));
  const before = Date.now();
  const pid = await orphan("sleep 0.3; exit 3");
  t.equal(stat(pid)?.ppid, process.pid, "its parent is now us, not pid 1");
  const exit = await reaper.watch(pid);
  t.equal(exit.pid, pid);
  t.equal(exit.status, 3);
  t.ok(
    exit.exitedAt.getTime() >= before && exit.exitedAt.getTime() <= Date.now(),
    "exitedAt is the reap time",
  );
  t.same(
    seen.filter((e) => e.pid === pid),
    [exit],
    "onExit saw it once",
  );
  t.notOk(existsSync(`/proc/${pid}`), "reaped: no zombie left");
});

t.test("status is containerd's: exit code, or 128 + signal", async (t) => {
  const reaper = startReaper(t);
  const cases: [string, NodeJS.Signals | undefined, number][] = [
    ["exit 0", undefined, 0],
    ["exit 255", undefined, 255],
    ["exec sleep 100", "SIGKILL", 137],
    ["exec sleep 100", "SIGTERM", 143],
    ["exec sleep 100", "SIGHUP", 129], // not SIGINT: sh makes background jobs ignore it
  ];
  for (const [script, signal, status] of cases) {
    const pid = await orphan(script);
    if (signal) process.kill(pid, signal);
    t.equal((await reaper.watch(pid)).status, status, `${script}${signal ? ` killed by ${signal}` : ""}`);
  }
});

t.test("an exit before watch() is kept; `since` ignores older exits", async (t) => {
  const reaper = startReaper(t);
  const reaped = new Set<number>();
  reaper.onExit((exit) => reaped.add(exit.pid));
  const pid = await orphan("exit 5");
  await waitFor("the exit", () => reaped.has(pid)); // onExit alone keeps no process alive
  t.pass("reaped before anyone watched it");
  const exit = await reaper.watch(pid);
  t.equal(exit.status, 5, "watch resolves from the kept exit");
  t.same(
    await reaper.watch(pid, { since: new Date(exit.exitedAt.getTime()) }),
    exit,
    "since = exit time matches",
  );
  await t.rejects(reaper.watch(pid, { since: new Date(Date.now() + 60_000) }), { code: "ESRCH" });
});

t.test("watch while the process is still another process's zombie (runc's init case)", async (t) => {
  const reaper = startReaper(t);
  // The child exits at once; its parent never waits for it, so it stays that parent's zombie
  // until the parent exits and it re-parents to us -- as when the container's init dies before
  // `runc create` returns.
  const sub = execa("python3", [
    "-c",
    "import os, sys, time\npid = os.fork()\nif pid == 0: os._exit(4)\nprint(pid, flush=True)\ntime.sleep(0.5)",
  ]);
  const pid = await new Promise<number>((resolve) =>
    sub.stdout.once("data", (d: Buffer) => resolve(Number(d))),
  );
  started.add(pid);
  await waitFor("the zombie", () => stat(pid)?.state === "Z");
  t.equal(stat(pid)?.ppid, sub.pid, "a zombie of the intermediate process");
  const exit = await reaper.watch(pid);
  t.equal(exit.status, 4);
  t.equal((await sub).exitCode, 0, "the intermediate (a Node child) reported its own exit");
});

t.test("Node's own children keep their exit events while the reaper runs", { timeout: 60_000 }, async (t) => {
  const reaper = startReaper(t);
  const sweeper = setInterval(() => reaper.reap(), 1); // sweep as often as possible, too
  t.teardown(() => clearInterval(sweeper));

  const execs = Array.from({ length: 60 }, (_, i) =>
    execa("sh", ["-c", `sleep 0.0${i % 10}; exit ${i % 50}`], { reject: false }),
  );
  const spawns = Array.from(
    { length: 20 },
    (_, i) =>
      new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
        const child = spawn("sh", ["-c", i % 2 ? "kill -TERM $$" : `exit ${i}`]);
        child.on("error", reject);
        child.on("exit", (code, signal) => resolve([code, signal]));
      }),
  );
  const orphans = await Promise.all(Array.from({ length: 30 }, (_, i) => orphan(`exit ${i}`)));
  const exits = await Promise.all(orphans.map((pid) => reaper.watch(pid)));

  t.same(
    (await Promise.all(execs)).map((r) => r.exitCode),
    execs.map((_, i) => i % 50),
    "execa: every exit code",
  );
  t.same(
    await Promise.all(spawns),
    spawns.map((_, i) => (i % 2 ? [null, "SIGTERM"] : [i, null])),
    "child_process: every exit event",
  );
  t.same(
    exits.map((e) => e.status),
    orphans.map((_, i) => i),
    "every orphan reaped by us with its status",
  );
});

t.test("a watched pid reaped by someone else rejects with ESRCH", async (t) => {
  const reaper = startReaper(t, { safetySweepMs: 50 });
  const child = spawn("sleep", ["0.2"]); // libuv's child: libuv reaps it, not us
  const exited = new Promise((resolve) => child.on("exit", resolve));
  await t.rejects(reaper.watch(child.pid!), { code: "ESRCH" });
  t.equal(await exited, 0, "libuv still got its exit");
});

t.test("watch() of a pid that is not ours, or not a pid, rejects", async (t) => {
  const reaper = startReaper(t);
  await t.rejects(reaper.watch(1), { code: "ESRCH" });
  await t.rejects(reaper.watch(process.pid), { code: "ESRCH" });
  await t.rejects(reaper.watch(0), RangeError);
  await t.rejects(reaper.watch(1.5), RangeError);
});

t.test("one reaper at a time; close() rejects pending watches", async (t) => {
  const reaper = createReaper();
  t.throws(() => createReaper(), /already running/);
  const pid = await orphan("exec sleep 100");
  const watching = reaper.watch(pid);
  reaper.close();
  await t.rejects(watching, { code: "ECANCELED" });
  await t.rejects(reaper.watch(pid), { code: "ECANCELED" });

  const next = startReaper(t);
  process.kill(pid, "SIGKILL");
  t.equal((await next.watch(pid)).status, 137, "a new reaper takes over");
});

t.test("a throwing onExit listener does not stop the others", async (t) => {
  const reaper = startReaper(t);
  // Catch the uncaught exception here, not in tap.
  const tapListeners = process.listeners("uncaughtException");
  process.removeAllListeners("uncaughtException");
  t.teardown(() => {
    for (const listener of tapListeners) process.on("uncaughtException", listener);
  });
  const thrown = new Promise<unknown>((resolve) => process.once("uncaughtException", resolve));
  let threw = false;
  reaper.onExit(() => {
    if (threw) return;
    threw = true;
    throw new Error("listener failed");
  });
  const got: number[] = []; // may also hold strays: e.g. a `sleep` orphaned by a killed sh above
  reaper.onExit((exit) => got.push(exit.pid));
  const pid = await orphan("exit 9");
  t.equal((await reaper.watch(pid)).status, 9);
  t.ok(got.includes(pid), "the next listener got it");
  t.match(await thrown, { message: "listener failed" }, "surfaces as an uncaught exception");
});

t.test("no zombie children are left", async (t) => {
  const reaper = startReaper(t);
  reaper.reap();
  await waitFor("no zombies", () => zombieChildren().length === 0);
  t.same(zombieChildren(), []);
  for (const pid of started) t.notOk(existsSync(`/proc/${pid}`), `orphan ${pid} is gone`);
});
