// tsruncd's promise: restarting or crashing the daemon kills no container. Ten containers run
// while tsruncd is SIGKILLed and restarted ten times; one of them exits while the daemon is
// down. None is killed (same shim and init pids throughout), all stay reachable (exec), and the
// exit that happened meanwhile is reported afterwards (tasks ls, tasks wait). A shim SIGKILLed
// under a running daemon is reported stopped with 137, as containerd reports it, and its bundle
// is removed. At the end nothing is left: no shim, no bundle, no runc state, no cgroup.
import * as fs from "node:fs";
import * as path from "node:path";
import t from "tap";
import { type DaemonEnv, daemonEnv } from "./helpers/daemon.js";
import { alive } from "./helpers/shim.js";
import { waitFor } from "./helpers/wait.js";

interface TaskRow {
  id: string;
  pid: number;
  status: string;
  exitStatus?: number;
}

async function tasks(d: DaemonEnv): Promise<Map<string, TaskRow>> {
  const r = await d.tsctl(["tasks", "ls", "--format", "json"]);
  if (r.exitCode !== 0) throw new Error(`tasks ls: ${r.stderr}`);
  const rows = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
  return new Map(
    rows.map((row) => {
      const id = String(row.id ?? row.containerId ?? row.task);
      return [
        id,
        {
          id,
          pid: Number(row.pid),
          status: String(row.status),
          exitStatus: row.exitStatus === undefined ? undefined : Number(row.exitStatus),
        },
      ];
    }),
  );
}

function shimPidOf(d: DaemonEnv, id: string): number {
  return Number.parseInt(fs.readFileSync(path.join(d.state, d.namespace, id, "shim.pid"), "utf8"), 10);
}

function bundles(d: DaemonEnv): string[] {
  try {
    return fs.readdirSync(path.join(d.state, d.namespace)).sort();
  } catch {
    return [];
  }
}

t.test("10 SIGKILL restarts of tsruncd under 10 containers kill none of them", async (t) => {
  const d = await daemonEnv(t);
  await d.start();
  const ids = Array.from({ length: 10 }, (_, i) => `c${i}`);
  const rootfs = d.rootfs("shared");
  for (const id of ids) {
    // c3 exits with 7 on SIGUSR1: it is the one that exits while the daemon is down.
    const cmd =
      id === "c3" ? ["sh", "-c", 'trap "exit 7" USR1; while :; do sleep 0.2; done'] : ["sleep", "1000"];
    const r = await d.tsctl(["run", "-d", "--rootfs", rootfs, id, ...cmd]);
    t.equal(r.exitCode, 0, `run -d ${id}: ${r.stderr}`);
  }
  const before = await tasks(d);
  const shims = new Map(ids.map((id) => [id, shimPidOf(d, id)]));
  for (const id of ids) t.equal(before.get(id)?.status, "RUNNING", `${id} running`);

  const reconnectMs: number[] = [];
  for (let round = 0; round < 10; round++) {
    await d.kill();
    if (round === 3) {
      // c3 exits while no daemon runs: its shim must keep the status for the next one.
      const pid = before.get("c3")?.pid ?? 0;
      process.kill(pid, "SIGUSR1");
      await waitFor(() => !alive(pid), { what: "c3 to exit while tsruncd is down" });
    }
    const started = performance.now();
    await d.start();
    reconnectMs.push(performance.now() - started);
    const now = await tasks(d);
    for (const id of ids) {
      const row = now.get(id);
      if (id === "c3" && round >= 3) {
        t.equal(row?.status, "STOPPED", `round ${round}: c3 reported stopped`);
        t.equal(row?.exitStatus, 7, `round ${round}: c3's exit status kept`);
        continue;
      }
      if (row?.status !== "RUNNING" || row.pid !== before.get(id)?.pid) {
        t.fail(
          `round ${round}: ${id} is ${row?.status} pid ${row?.pid}, was RUNNING pid ${before.get(id)?.pid}`,
        );
      }
      if (!alive(shims.get(id) ?? 0)) t.fail(`round ${round}: ${id}'s shim died`);
    }
    const target =
      ids[(round * 3 + 1) % ids.length] === "c3" ? "c0" : (ids[(round * 3 + 1) % ids.length] as string);
    const ex = await d.tsctl(["tasks", "exec", "--exec-id", `e${round}`, target, "echo", `alive-${round}`]);
    t.equal(ex.stdout.trim(), `alive-${round}`, `round ${round}: exec into ${target} after the restart`);
  }
  t.comment(
    `tsruncd start → serving with 10 containers, ms: ${reconnectMs.map((v) => v.toFixed(0)).join(" ")}`,
  );

  const wait = await d.tsctl(["tasks", "wait", "c3"]);
  t.equal(wait.stdout.trim(), "7", "tasks wait reports c3's exit status");

  for (const id of ids) {
    const rm = await d.tsctl(["tasks", "rm", "-f", id]);
    t.equal(rm.exitCode, 0, `tasks rm -f ${id}: ${rm.stderr}`);
    const crm = await d.tsctl(["containers", "rm", id]);
    t.equal(crm.exitCode, 0, `containers rm ${id}: ${crm.stderr}`);
  }
  await waitFor(() => [...shims.values()].every((pid) => !alive(pid)), { what: "every shim to exit" });
  await d.finish(t);
});

t.test("a SIGKILLed shim: task stopped with 137, bundle removed, daemon fine", async (t) => {
  const d = await daemonEnv(t);
  await d.start();
  const rootfs = d.rootfs("r");
  t.equal((await d.tsctl(["run", "-d", "--rootfs", rootfs, "k1", "sleep", "1000"])).exitCode, 0);
  t.equal((await d.tsctl(["run", "-d", "--rootfs", rootfs, "k2", "sleep", "1000"])).exitCode, 0);
  const shim = shimPidOf(d, "k1");
  const init = (await tasks(d)).get("k1")?.pid ?? 0;
  process.kill(shim, "SIGKILL");
  const row = await waitFor(
    async () => {
      const r = (await tasks(d)).get("k1");
      return r?.status === "STOPPED" ? r : undefined;
    },
    { what: "k1 reported stopped" },
  );
  t.equal(row.exitStatus, 137, "exit status 137, as containerd reports a killed shim");
  await waitFor(() => !alive(init), { what: "the container's init to be gone" });
  await waitFor(() => !bundles(d).includes("k1"), { what: "k1's bundle removed" });
  const wait = await d.tsctl(["tasks", "wait", "k1"]);
  t.equal(wait.stdout.trim(), "137", "tasks wait reports 137");
  t.equal((await tasks(d)).get("k2")?.status, "RUNNING", "the other container is untouched");
  t.equal((await d.tsctl(["tasks", "rm", "k1"])).exitCode, 0, "the stopped task can be removed");
  t.equal((await d.tsctl(["containers", "rm", "k1"])).exitCode, 0);
  t.equal((await d.tsctl(["tasks", "rm", "-f", "k2"])).exitCode, 0);
  t.equal((await d.tsctl(["containers", "rm", "k2"])).exitCode, 0);
  await d.finish(t);
});
