// Crash consistency: tsruncd SIGKILLs itself (TSRUNC_CRASH_AT, see packages/daemon/src/failpoint.ts)
// between each two steps of `tsctl run` (task recorded, bundle made, shim started, Task.Create,
// created recorded, Task.Start) and of `tsctl tasks rm` (intent recorded, shim's Delete done).
// After a restart every container is fully there or fully gone: a task whose create did not
// finish leaves no shim, bundle, runc container or record; one that finished is usable; a
// delete that began finishes. The container record itself (Containers.Create, a separate call
// before the task, as with ctr) stays and can be removed.
import t from "tap";
import { findScopeProcesses } from "./helpers/cleanup.js";
import { type DaemonEnv, daemonEnv } from "./helpers/daemon.js";
import { waitFor } from "./helpers/wait.js";

type Expect = "gone" | "created" | "running";
const points: Array<[string, Expect]> = [
  ["create:recorded", "gone"],
  ["create:bundle", "gone"],
  ["create:shim-started", "gone"],
  ["create:task-created", "gone"],
  ["create:recorded-created", "created"],
  ["start:started", "running"],
  ["delete:recorded", "gone"],
  ["delete:shim-deleted", "gone"],
];

async function taskStatus(d: DaemonEnv, id: string): Promise<string | undefined> {
  const r = await d.tsctl(["tasks", "ls", "--format", "json"]);
  if (r.exitCode !== 0) throw new Error(`tasks ls: ${r.stderr}`);
  const rows = JSON.parse(r.stdout) as Array<{ id: string; status: string }>;
  return rows.find((row) => row.id === id)?.status;
}

/** Processes of the test other than tsruncd itself: shims and containers. */
function others(d: DaemonEnv): string[] {
  return findScopeProcesses(d.root.scope)
    .filter((p) => p.pid !== d.pid() && !p.argv.some((a) => a.endsWith("/tsruncd")))
    .map((p) => `${p.pid} ${p.argv.join(" ")}`);
}

for (const [point, expect] of points) {
  t.test(`SIGKILL at ${point}`, async (t) => {
    const d = await daemonEnv(t);
    const rootfs = d.rootfs("r");
    const id = "x1";
    if (point.startsWith("delete:")) {
      await d.start([], { env: { TSRUNC_CRASH_AT: point } });
      t.equal((await d.tsctl(["run", "-d", "--rootfs", rootfs, id, "sleep", "1000"])).exitCode, 0, "run -d");
      const rm = await d.tsctl(["tasks", "rm", "-f", id]);
      t.not(rm.exitCode, 0, "tasks rm fails: the daemon died under it");
    } else {
      await d.start([], { env: { TSRUNC_CRASH_AT: point } });
      const run = await d.tsctl(["run", "-d", "--rootfs", rootfs, id, "sleep", "1000"]);
      t.not(run.exitCode, 0, "run fails: the daemon died under it");
      t.match(run.stderr, /^tsctl: /, "with a one-line error");
    }
    await d.exited();
    await d.start();
    const status = await taskStatus(d, id);
    if (expect === "gone") {
      t.equal(status, undefined, "no task after the restart");
      const left = await waitFor(() => others(d).length === 0, { what: "no shim or container left" }).catch(
        () => others(d),
      );
      t.same(left, true, "no shim or container process left");
    } else {
      t.equal(status, expect.toUpperCase(), `the task is fully there: ${expect}`);
      const ex = await d.tsctl(["tasks", "rm", "-f", id]);
      t.equal(ex.exitCode, 0, `tasks rm -f: ${ex.stderr}`);
    }
    const crm = await d.tsctl(["containers", "rm", id]);
    t.equal(crm.exitCode, 0, `the container record can be removed: ${crm.stderr}`);
    await d.finish(t);
  });
}
