// tsruncd, tsctl and the shim as single files (packages/*/dist/sea) on a "host" without Node:
// tsruncd and every tsctl run in private mount namespaces where every node is hidden and PATH
// has none (helpers/no-node.ts). `tsctl run --rm`, then a detached container across a tsruncd
// SIGKILL and restart (a new namespace), an exec into it, and its removal; then no process is left
// in any namespace the test made. Also: the single-file tsruncd runs with its launcher's V8 heap
// flag (it runs itself again with NODE_OPTIONS, which neither it nor its shims keep).
import * as fs from "node:fs";
import * as path from "node:path";
import t from "tap";
import { daemonEnv } from "./helpers/daemon.js";
import { mountNamespaceOf, processesInMountNamespace, ticksNow } from "./helpers/no-node.js";
import { REPO } from "./helpers/our-shim.js";
import { waitFor } from "./helpers/wait.js";

const SEA = {
  tsruncd: path.join(REPO, "packages/daemon/dist/sea/tsruncd"),
  tsctl: path.join(REPO, "packages/client/dist/sea/tsctl"),
  shim: path.join(REPO, "packages/shim-runc-v2/dist/sea/containerd-shim-tsrunc-v2"),
};

function environ(pid: number): string[] {
  return fs.readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
}

t.test("tsruncd, tsctl and the shim as single files where no node exists", async (t) => {
  const d = await daemonEnv(t, { ...SEA, noNode: true });
  const namespaces: string[] = [];
  const started = async () => {
    await d.start();
    const pid = d.pid() as number;
    const ns = mountNamespaceOf(pid);
    if (ns) namespaces.push(ns);
    return pid;
  };
  const pid1 = await started();
  t.equal(fs.readlinkSync(`/proc/${pid1}/exe`), SEA.tsruncd, "tsruncd is the single file");
  // The second run (same pid) started with the heap flag in NODE_OPTIONS and the marker.
  t.ok(
    environ(pid1).includes("NODE_OPTIONS=--max-semi-space-size=1"),
    "tsruncd re-ran itself with its V8 flag",
  );

  const v = await d.tsctl(["--version"]);
  t.match(v.stdout, /^tsctl \S+ \(node v\d+\.\d+\.\d+, single executable\)$/m, "tsctl --version");

  const r = await d.tsctl([
    "run",
    "--rm",
    "--rootfs",
    d.rootfs("c1"),
    "c1",
    "/bin/sh",
    "-c",
    "echo sa-hi; exit 3",
  ]);
  t.equal(r.exitCode, 3, "tsctl run --rm: the container's exit code", { stderr: r.stderr });
  t.match(r.stdout, /sa-hi/);

  const det = await d.tsctl(["run", "-d", "--rootfs", d.rootfs("d1"), "d1", "/bin/sleep", "1000"]);
  t.equal(det.exitCode, 0, "tsctl run -d d1", { stderr: det.stderr });
  const shimPid = Number(fs.readFileSync(path.join(d.state, d.namespace, "d1", "shim.pid"), "utf8"));
  t.equal(fs.readlinkSync(`/proc/${shimPid}/exe`), SEA.shim, "the shim is the single file");
  t.notOk(
    environ(shimPid).some((e) => e.startsWith("NODE_OPTIONS=") || e.startsWith("TSRUNC_SEA_")),
    "the shim did not inherit tsruncd's NODE_OPTIONS",
  );
  const ls1 = await d.tsctl(["tasks", "ls"]);
  const line1 = ls1.stdout.split("\n").find((l) => l.startsWith("d1"));
  t.match(line1, /RUNNING/, "d1 runs");

  await d.kill();
  const pid2 = await started();
  t.not(pid2, pid1, "a new tsruncd");
  const ls2 = await d.tsctl(["tasks", "ls"]);
  t.equal(
    ls2.stdout.split("\n").find((l) => l.startsWith("d1")),
    line1,
    "d1 still RUNNING, same pid, after tsruncd's SIGKILL and restart",
  );
  const e = await d.tsctl(["tasks", "exec", "--exec-id", "e1", "d1", "/bin/echo", "back"]);
  t.equal(e.exitCode, 0, "exec after the restart", { stderr: e.stderr });
  t.match(e.stdout, /back/);
  const rm = await d.tsctl(["tasks", "rm", "-f", "d1"]);
  t.equal(rm.exitCode, 0, "tsctl tasks rm -f d1", { stderr: rm.stderr });
  const crm = await d.tsctl(["containers", "rm", "d1"]);
  t.equal(crm.exitCode, 0, "tsctl containers rm d1", { stderr: crm.stderr });

  const mark = ticksNow();
  await d.finish(t);
  t.equal(namespaces.length, 2);
  for (const ns of namespaces) {
    await waitFor(() => processesInMountNamespace(ns, mark).length === 0, {
      what: `${ns} empty`,
      timeoutMs: 5000,
    }).catch(() => {});
    t.same(processesInMountNamespace(ns, mark), [], `no process left in ${ns} (the namespace is gone)`);
  }
});
