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
import { OomWatchV1, OomWatchV2 } from "./oom.js";

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

const mine = memoryCgroupOfPid(process.pid);
t.test(
  "v1: one event per OOM, at the OOM; none for the cgroup's removal",
  { skip: mine?.version !== 1 && "not a cgroup v1 memory host" },
  async (t) => {
    const dir = join(mine!.dir, `tsrunc-oom-test-${randomBytes(4).toString("hex")}`);
    mkdirSync(dir);
    t.teardown(() => {
      if (existsSync(dir)) rmdirSync(dir);
    });
    writeFileSync(join(dir, "memory.limit_in_bytes"), String(16 * 1024 * 1024));
    const published: number[] = [];
    const w = new OomWatchV1({ version: 1, dir }, () => published.push(performance.now()), quietLog);
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
    await until("the OOM event", () => published.length > 0);
    t.equal(published.length, 1, "one event");
    t.ok(
      published[0]! <= ended + 50,
      `signalled by the time its exit was seen (${(published[0]! - started).toFixed(0)} ms after start, exit at ${(ended - started).toFixed(0)} ms)`,
    );
    t.equal(parseFlatKeyed(readFileSync(join(dir, "memory.oom_control"), "utf8")).oom_kill, 1);

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
