// The OOM watchers against the kernel: v1 with a real memory cgroup and a process that
// allocates until it is killed (this host is cgroup v1 for memory), v2 with a stand-in
// memory.events file (inotify on a regular file behaves as on cgroupfs for our purpose).
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import t from "tap";
import { memoryCgroupOfPid, parseFlatKeyed } from "./cgroup.js";
import { OomWatchV2, watchMemoryCgroup } from "./oom.js";

const quietLog = { warn: () => {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const HOG = "x=a; while true; do x=$x$x; done";

async function until(what: string, fn: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

// A fresh memory cgroup: under ours on v1; on a unified host under the root (the only place
// where the memory controller is surely enabled for children and no process of ours sits).
const mine = memoryCgroupOfPid(process.pid);
const v1 = mine?.version === 1;
const parent = v1 ? mine.dir : "/sys/fs/cgroup";
const oomKills = (dir: string) =>
  parseFlatKeyed(readFileSync(join(dir, v1 ? "memory.oom_control" : "memory.events"), "utf8")).oom_kill;

t.test(
  `a real cgroup (v${v1 ? 1 : 2}): one event per OOM, at the OOM; none for the cgroup's removal`,
  async (t) => {
    const dir = join(parent, `tsrunc-oom-test-${randomBytes(4).toString("hex")}`);
    mkdirSync(dir);
    t.teardown(() => {
      if (existsSync(dir)) rmdirSync(dir);
    });
    writeFileSync(join(dir, v1 ? "memory.limit_in_bytes" : "memory.max"), String(16 * 1024 * 1024));
    if (!v1) writeFileSync(join(dir, "memory.swap.max"), "0");
    const published: number[] = [];
    const w = watchMemoryCgroup(
      { version: v1 ? 1 : 2, dir },
      () => published.push(performance.now()),
      quietLog,
    );
    t.teardown(() => w.close());
    w.check();
    t.same(published, [], "nothing before an OOM");

    // The hog joins the cgroup itself before it starts allocating.
    const started = performance.now();
    const hog = await execa(
      "/bin/sh",
      ["-c", `echo $$ > ${dir}/cgroup.procs && exec /bin/busybox sh -c '${HOG}'`],
      {
        reject: false,
        timeout: 20_000,
      },
    );
    const ended = performance.now();
    t.equal(hog.signal, "SIGKILL", "the kernel killed the hog");
    if (!v1) w.check(); // v2 learns of it from memory.events; the exit path calls check()
    await until("the OOM event", () => published.length > 0);
    t.equal(published.length, 1, "one event");
    t.ok(
      published[0]! <= ended + 50,
      `signalled by the time its exit was seen (${(published[0]! - started).toFixed(0)} ms after start, exit at ${(ended - started).toFixed(0)} ms)`,
    );
    t.equal(oomKills(dir), 1, "the kernel counted one kill");

    rmdirSync(dir);
    await sleep(100);
    w.check();
    t.equal(published.length, 1, "removing the cgroup is not an OOM");
  },
);

t.test("v2: an event when oom_kill grows, none for other changes; ends when the file goes", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tsrunc-oom-v2-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "memory.events");
  const write = (oomKill: number, high = 0) =>
    writeFileSync(file, `low 0\nhigh ${high}\nmax 0\noom ${oomKill}\noom_kill ${oomKill}\n`);
  write(1); // an earlier kill (before we watched) is not reported
  let published = 0;
  const w = new OomWatchV2({ version: 2, dir }, () => published++, quietLog);
  t.teardown(() => w.close());
  write(1, 5);
  await sleep(100);
  t.equal(published, 0, "a change without a new kill");
  write(2, 5);
  await until("the event", () => published === 1);
  write(2, 6);
  await sleep(100);
  t.equal(published, 1);
  // check() (called at the init's exit) catches what inotify has not delivered yet.
  write(3, 6);
  w.check();
  t.equal(published, 2, "check() publishes a pending kill at once");
  await sleep(100);
  t.equal(published, 2, "and the later notification does not repeat it");
  rmSync(file);
  w.check();
  write(9);
  await sleep(100);
  t.equal(published, 2, "closed once the file was gone");
});
