// Grouped mode (issue 13): the runtime io.containerd.tsrunc-grouped.v2 (containerd resolves it to
// containerd-shim-tsrunc-grouped-v2, a link to our shim) serves every container of a namespace
// from one shim process, which exits after the last container is deleted; a SIGKILLed group
// shim is cleaned up by containerd running `delete` for each of its containers. Driven through
// real containerd with ctr.
import * as fs from "node:fs";
import * as path from "node:path";
import t from "tap";
import { assertNoLeaks } from "./helpers/cleanup.js";
import type { Containerd, TestLike } from "./helpers/containerd.js";
import { LineReader } from "./helpers/lines.js";
import { containerdWithOurShim } from "./helpers/our-shim.js";
import { waitFor } from "./helpers/wait.js";

const GROUPED = "io.containerd.tsrunc-grouped.v2";

/** Our shim's server processes for this containerd (zombies left out). */
function ourShimPids(grpcAddress: string): number[] {
  const pids: number[] = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0");
      const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const zombie = stat.slice(stat.lastIndexOf(")") + 2)[0] === "Z";
      if (!zombie && argv.includes("serve") && argv.includes(grpcAddress)) pids.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Our shim installed a second time under the grouped runtime's binary name. */
async function groupedContainerd(t: TestLike): Promise<Containerd> {
  const cd = await containerdWithOurShim(t);
  const bin = path.join(cd.root, "opt/bin");
  fs.symlinkSync("containerd-shim-tsrunc-v2", path.join(bin, "containerd-shim-tsrunc-grouped-v2"));
  return cd;
}

async function taskLine(cd: Containerd, id: string): Promise<string | undefined> {
  return (await cd.ctr(["task", "ls"])).stdout.split("\n").find((l) => l.startsWith(`${id} `));
}

t.test("ten containers share one group shim; one's exec, kill and delete leave the others", async (t) => {
  const cd = await groupedContainerd(t);
  const rootfs = cd.rootfs();
  const reader = new LineReader(cd.ctrSpawn(["events"]).stdout);
  await waitFor(
    async () => {
      await cd.ctr(["namespaces", "label", cd.namespace, `probe=${Date.now()}`]);
      return reader.lines.some((l) => l.includes("/namespaces/update"));
    },
    { what: "ctr events subscribed", timeoutMs: 10000, intervalMs: 100 },
  );
  const ids = Array.from({ length: 10 }, (_, i) => `g${i}`);
  // Half one after the other, half at once (a start racing another start of the same group).
  for (const id of ids.slice(0, 5)) {
    const r = await cd.ctr(["run", "-d", "--runtime", GROUPED, "--rootfs", rootfs, id, "/bin/sleep", "1000"]);
    t.equal(r.exitCode, 0, `${id} started: ${r.stderr}`);
  }
  const rs = await Promise.all(
    ids
      .slice(5)
      .map((id) => cd.ctr(["run", "-d", "--runtime", GROUPED, "--rootfs", rootfs, id, "/bin/sleep", "1000"])),
  );
  for (const [i, r] of rs.entries()) t.equal(r.exitCode, 0, `${ids[i + 5]} started: ${r.stderr}`);
  const addresses = new Set(ids.map((id) => fs.readFileSync(path.join(cd.bundleDir(id), "address"), "utf8")));
  t.equal(addresses.size, 1, "every bundle names the same shim address");
  const pids = ourShimPids(cd.grpcAddress);
  t.equal(pids.length, 1, "one shim process serves the group");

  const exec = await cd.ctr(["task", "exec", "--exec-id", "x1", "g3", "/bin/sh", "-c", "exit 7"]);
  t.equal(exec.exitCode, 7, `exec in g3 reports its status: ${exec.stderr}`);
  t.equal((await cd.ctr(["task", "kill", "-s", "KILL", "g5"])).exitCode, 0, "kill g5");
  await waitFor(async () => (await taskLine(cd, "g5"))?.includes("STOPPED"), { what: "g5 stopped" });
  const rm = await cd.ctr(["task", "rm", "g5"]);
  t.equal(rm.exitCode, 0, `task rm g5: ${rm.stderr}`);
  t.equal((await cd.ctr(["container", "rm", "g5"])).exitCode, 0, "container rm g5");
  for (const id of ids.filter((i) => i !== "g5"))
    t.match(await taskLine(cd, id), /RUNNING/, `${id} still running`);
  t.same(ourShimPids(cd.grpcAddress), pids, "the same shim still serves the others");

  // Events carry the container they are about.
  const topicOf = (id: string) =>
    reader.lines
      .map((l) => / (\/tasks\/\S+) (\{.*\})$/.exec(l))
      .filter((m): m is RegExpExecArray => m !== null && JSON.parse(m[2]!).container_id === id)
      .map((m) => m[1] ?? "");
  await waitFor(() => topicOf("g5").includes("/tasks/delete"), { what: "g5's delete event" });
  t.same(
    topicOf("g5").filter((x) => x !== "/tasks/oom"),
    ["/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"],
    "g5's events",
  );
  t.same(
    topicOf("g3").filter((x) => x.startsWith("/tasks/exec") || x === "/tasks/exit"),
    ["/tasks/exec-added", "/tasks/exec-started", "/tasks/exit"],
    "g3's exec events",
  );

  // The rest, at once: the shim exits after the last.
  const rest = ids.filter((i) => i !== "g5");
  const rms = await Promise.all(rest.map((id) => cd.ctr(["task", "rm", "-f", id])));
  for (const [i, r] of rms.entries()) t.equal(r.exitCode, 0, `task rm -f ${rest[i]}: ${r.stderr}`);
  for (const id of rest) t.equal((await cd.ctr(["container", "rm", id])).exitCode, 0, `container rm ${id}`);
  await waitFor(() => ourShimPids(cd.grpcAddress).length === 0, {
    what: "the group's shim to exit",
    timeoutMs: 10_000,
  });
  await cd.stop();
  assertNoLeaks(t, cd.scope);
});

t.test("a SIGKILLed group shim: containerd's delete cleans every container of the group", async (t) => {
  const cd = await groupedContainerd(t);
  const rootfs = cd.rootfs();
  const ids = ["k0", "k1", "k2", "k3"];
  for (const id of ids) {
    const r = await cd.ctr(["run", "-d", "--runtime", GROUPED, "--rootfs", rootfs, id, "/bin/sleep", "1000"]);
    t.equal(r.exitCode, 0, `${id} started: ${r.stderr}`);
  }
  const pids = ourShimPids(cd.grpcAddress);
  t.equal(pids.length, 1, "one shim");
  process.kill(pids[0]!, "SIGKILL");
  // containerd notices the closed connections and runs `delete` for each container.
  await waitFor(
    async () => {
      const ls = (await cd.ctr(["task", "ls"])).stdout;
      return ids.every((id) => !ls.split("\n").some((l) => l.startsWith(`${id} `) && l.includes("RUNNING")));
    },
    { what: "every task of the group gone or stopped", timeoutMs: 20_000, intervalMs: 200 },
  );
  for (const id of ids) {
    await cd.ctr(["task", "rm", "-f", id]);
    const crm = await cd.ctr(["container", "rm", id]);
    t.equal(crm.exitCode, 0, `container rm ${id}: ${crm.stderr}`);
  }
  await cd.stop();
  assertNoLeaks(t, cd.scope);
});
