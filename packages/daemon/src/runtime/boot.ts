// What the daemon does at start-up, before it serves: every bundle on disk and every task row is
// reconciled (see README.md, "crash consistency"). Bundles load in parallel with a bound, and
// each one has its own deadlines, so one wedged shim delays only itself.
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { tasktypes } from "@tsrunc/protocol/shim";
import { readAddress, readShimBinaryPath } from "@tsrunc/shim-contract/bundle-files";
import { identifierProblem } from "@tsrunc/shim-contract/identifiers";
import { connectShim, type ShimConnection } from "@tsrunc/shim-contract/launcher";
import type { TaskPhase } from "../store/index.js";
import { bundleDir, relayShimLog, removeBundle } from "./bundle.js";
import { Limiter } from "./pool.js";
import { ShimTask } from "./shim-task.js";
import type { TaskManager } from "./task-manager.js";

export interface BootReport {
  reattached: number;
  /** Shims found dead: exit recorded, bundle cleaned. */
  dead: number;
  /** Unfinished creates/deletes and bundles without records, torn down. */
  rolledBack: number;
  /** Rows whose bundle was missing. */
  orphanRows: number;
  /** Containers whose networks were torn down because their task is gone. */
  networksRemoved: number;
  ms: number;
}

export interface BootOptions {
  concurrency?: number;
  connectTimeoutMs?: number;
  callTimeoutMs?: number;
}

/** Namespaces and ids of bundles on disk (dot-directories are the daemon's own). */
async function bundlesOnDisk(state: string): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  const namespaces = await readdir(state, { withFileTypes: true }).catch(() => []);
  for (const ns of namespaces) {
    if (!ns.isDirectory() || identifierProblem(ns.name)) continue;
    const ids = await readdir(join(state, ns.name), { withFileTypes: true }).catch(() => []);
    for (const id of ids) {
      if (id.isDirectory() && !identifierProblem(id.name)) out.push([ns.name, id.name]);
    }
  }
  return out;
}

const phaseOf: Record<number, TaskPhase> = {
  [tasktypes.Status.CREATED]: "created",
  [tasktypes.Status.RUNNING]: "running",
  [tasktypes.Status.PAUSED]: "paused",
  [tasktypes.Status.PAUSING]: "paused",
  [tasktypes.Status.STOPPED]: "stopped",
};

export async function boot(manager: TaskManager, opts: BootOptions = {}): Promise<BootReport> {
  const started = performance.now();
  const { store, state, log } = manager.opts;
  const report: BootReport = {
    reattached: 0,
    dead: 0,
    rolledBack: 0,
    orphanRows: 0,
    networksRemoved: 0,
    ms: 0,
  };
  const keys = new Map<string, [string, string]>();
  for (const [ns, id] of await bundlesOnDisk(state)) keys.set(`${ns}/${id}`, [ns, id]);
  for (const row of store.listTasks()) keys.set(`${row.namespace}/${row.id}`, [row.namespace, row.id]);
  const onDisk = new Set((await bundlesOnDisk(state)).map(([ns, id]) => `${ns}/${id}`));

  // Every container's lock is queued before this function first yields after listing, and the
  // work runs under the limiter: a request for one container waits only for that container.
  const limiter = new Limiter(opts.concurrency ?? 16);
  const jobs = [...keys.values()].map(async ([ns, id]) => {
    const tlog = log.child({ namespace: ns, id });
    try {
      await manager.serialize(ns, id, () =>
        limiter.run(async () => {
          const row = store.findTask(ns, id);
          const bundle = row?.bundle ?? bundleDir(state, ns, id);
          if (!onDisk.has(`${ns}/${id}`)) {
            report.orphanRows++;
            if (!row) return;
            if (row.phase === "creating" || row.phase === "deleting") {
              store.deleteTask(ns, id);
              tlog.info({ phase: row.phase }, "boot: dropped a task record whose bundle was never made");
            } else if (row.phase !== "stopped") {
              store.updateTask(ns, id, {
                phase: "stopped",
                exitStatus: 255,
                exitedAt: new Date(),
                updatedAt: new Date(),
              });
              tlog.warn("boot: task bundle is gone (reboot?); recorded as stopped with exit 255");
            }
            return;
          }
          const binary = row?.shimBinary || (await readShimBinaryPath(bundle));
          const conn = await reach(bundle, id, opts);
          const wanted =
            row && row.phase !== "creating" && row.phase !== "deleting" && store.findContainer(ns, id);
          const st =
            conn && wanted
              ? await conn.task
                  .state({ id }, { timeoutMs: opts.callTimeoutMs ?? 5_000 })
                  .catch(() => undefined)
              : undefined;
          if (conn && wanted && st) {
            const phase = phaseOf[st.status] ?? row.phase;
            store.updateTask(ns, id, { phase, pid: st.pid, address: conn.address, updatedAt: new Date() });
            manager.adopt(new ShimTask(ns, id, bundle, binary ?? "", conn, relayShimLog(bundle, tlog)));
            report.reattached++;
            return;
          }
          if (conn) {
            // A live shim for a create or delete that never finished, or with no record at all.
            tlog.warn({ phase: row?.phase ?? "none" }, "boot: tearing down an unfinished task");
            await teardownLive(conn, id);
            if (binary) await manager.recordDeadShim(ns, id, bundle, binary);
            else await removeBundle(bundle).catch(() => {});
            if (store.findTask(ns, id) && (!row || row.phase === "creating" || row.phase === "deleting"))
              store.deleteTask(ns, id);
            report.rolledBack++;
            return;
          }
          if (!row || row.phase === "creating" || row.phase === "deleting") report.rolledBack++;
          else report.dead++;
          tlog.warn("boot: shim does not answer; cleaning up with its delete");
          await manager.recordDeadShim(ns, id, bundle, binary);
          if (!row) await removeBundle(bundle).catch(() => {});
        }),
      );
    } catch (err) {
      tlog.error({ err: (err as Error).message }, "boot: reconcile failed");
    }
  });
  manager.markLocksQueued();
  await Promise.all(jobs);
  // Networks whose task is gone (died while we were down, a reboot, an unfinished create, a
  // teardown that failed last time) are removed now, each under its container's lock.
  if (manager.opts.network)
    report.networksRemoved = await manager.opts.network
      .reconcile(
        (ns, id) => manager.get(ns, id) !== undefined,
        (ns, id, fn) => manager.serialize(ns, id, fn),
      )
      .catch((err) => {
        log.error({ err: (err as Error).message }, "boot: network reconcile failed");
        return 0;
      });
  // Then GC (CNI 1.1.0 networks): whatever is not one of our recorded attachments may go.
  if (manager.opts.network) await manager.opts.network.gc().catch(() => []);
  report.ms = Math.round(performance.now() - started);
  manager.markBooted();
  log.info(report, "boot reconcile done");
  return report;
}

/** Connects to the shim a bundle names and checks that it answers; undefined when it does not. */
async function reach(bundle: string, id: string, opts: BootOptions): Promise<ShimConnection | undefined> {
  const address = await readAddress(bundle).catch(() => undefined);
  if (!address) return undefined;
  let conn: ShimConnection | undefined;
  try {
    conn = await connectShim(address, { timeoutMs: opts.connectTimeoutMs ?? 2_000 });
    await conn.task.connect({ id }, { timeoutMs: opts.callTimeoutMs ?? 5_000 });
    return conn;
  } catch {
    await conn?.close().catch(() => {});
    return undefined;
  }
}

async function teardownLive(conn: ShimConnection, id: string): Promise<void> {
  const t = conn.task;
  await t.kill({ id, signal: 9, all: true }, { timeoutMs: 5_000 }).catch(() => {});
  await t.wait({ id }, { timeoutMs: 5_000 }).catch(() => {});
  await t.delete({ id }, { timeoutMs: 10_000 }).catch(() => {});
  await t.shutdown({ id, now: true }, { timeoutMs: 5_000 }).catch(() => {});
  await conn.close().catch(() => {});
}
