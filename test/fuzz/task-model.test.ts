// Model-based testing of the shim's Task API with real runc containers: fast-check command
// sequences (Create, Start, Kill, Delete, Wait, State, CloseIO, Pids, Exec, Pause, Resume,
// ResizePty, on inits and an exec) checked against the state machine in lib/task-model.ts.
// After every sequence all containers are removed through the API, and nothing may be left:
// no runc container, no child process of the shim (live or zombie), no mount, no socket, and
// the shim's fd count back to its baseline.
import * as fs from "node:fs";
import * as path from "node:path";
import { execa } from "execa";
import fc from "fast-check";
import t from "tap";
import { readMountInfo } from "../helpers/cleanup.js";
import { campaign, executed, fileBudgetMs } from "./lib/campaign.js";
import { settle, snapshot } from "./lib/health.js";
import { liveShim } from "./lib/live-shim.js";
import { commandsArb, type Model, type Real } from "./lib/task-model.js";

const BUDGET = fileBudgetMs(15000);
const IDS = ["m1", "m2"];

function unixSocketsUnder(root: string): string[] {
  const text = fs.readFileSync("/proc/net/unix", "utf8");
  return text
    .split("\n")
    .slice(1)
    .map((l) => l.trim().split(/\s+/)[7])
    .filter((p): p is string => !!p && p.startsWith(`${root}/`))
    .sort();
}

t.test("Task API command sequences against the model, with real runc", async (t) => {
  const shim = await liveShim(t, { sentinel: false });
  const bundles: Record<string, string> = {};
  for (const id of IDS) bundles[id] = await shim.env.bundle(id, ["/bin/sleep", "100000"]);
  const root = shim.env.root.path;
  const runcRoot = path.join(root, "runc", shim.env.namespace);
  const implemented = new Map<string, boolean>();
  const { task, client } = await shim.connect();
  // Warm up before the baseline: the first event opens the shim's connection to the events socket.
  await task.create({ id: "m1", bundle: bundles.m1! });
  await task.delete({ id: "m1" });
  await new Promise((r) => setTimeout(r, 300));
  const mountsBase = readMountInfo().filter((m) => m.mountPoint.startsWith(root)).length;
  const socketsBase = unixSocketsUnder(root);
  shim.baseline = snapshot(shim.pid);
  let sequences = 0;
  let commands = 0;

  const removeAll = async () => {
    const o = { timeoutMs: 15000 };
    for (const id of IDS) {
      await task.resume({ id }, o).catch(() => {});
      await task.kill({ id, signal: 9 }, o).catch(() => {});
      await task.wait({ id }, { timeoutMs: 10000 }).catch(() => {});
      await task.delete({ id, execId: "e1" }, o).catch(() => {});
      await task.delete({ id }, o).catch(() => {});
    }
  };

  /** What a sequence may not leave behind. */
  const leftovers = async (): Promise<string[]> => {
    const problems: string[] = [];
    const list = await execa("runc", ["--root", runcRoot, "list", "-q"], { reject: false });
    const containers = String(list.stdout).split("\n").filter(Boolean);
    if (containers.length) problems.push(`runc containers left: ${containers.join(" ")}`);
    const kids = await settle(shim.pid, (s) => s.children.length === 0, 5000);
    if (!kids.ok)
      problems.push(
        `shim children left: ${kids.snap.children.join(" ")} (zombies: ${kids.snap.zombies.join(" ")})`,
      );
    const mounts = readMountInfo().filter((m) => m.mountPoint.startsWith(root));
    if (mounts.length !== mountsBase)
      problems.push(`mounts left: ${mounts.map((m) => m.mountPoint).join(" ")}`);
    const sockets = unixSocketsUnder(root);
    if (sockets.join() !== socketsBase.join())
      problems.push(`sockets: ${sockets.join(" ")} (before: ${socketsBase.join(" ")})`);
    const fds = await settle(shim.pid, (s) => s.fds <= shim.baseline.fds, 5000);
    if (!fds.ok) problems.push(`shim fds ${fds.snap.fds}, baseline ${shim.baseline.fds}`);
    return problems;
  };

  await campaign(t, {
    target: "task-model",
    arb: commandsArb(IDS),
    ms: BUDGET * 0.85,
    shrinkMs: 60000,
    toJson: (cmds) => [...cmds].map(String),
    run: async (cmds) => {
      const real: Real = { task, bundles, implemented, log: [] };
      sequences++;
      const problems: string[] = [];
      try {
        await fc.asyncModelRun(() => ({ model: { containers: new Map() } as Model, real }), cmds);
      } catch (e) {
        problems.push(`${(e as Error).message}\n  commands: ${real.log.join(", ")}`);
      } finally {
        commands += real.log.length;
        await removeAll();
      }
      problems.push(...(await leftovers()));
      return problems;
    },
  });
  t.comment(
    `${sequences} sequences, ${commands} commands; implemented: ${JSON.stringify(Object.fromEntries(implemented))}`,
  );
  t.same(await leftovers(), [], "nothing left after the campaign");
  await client.close();
  t.same(await shim.health(), [], "the shim is healthy");
});

t.teardown(() => {
  for (const [k, v] of Object.entries(executed)) t.comment(`inputs executed: ${k} ${v}`);
});
