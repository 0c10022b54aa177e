// A container's networks over its task's life. See README.md ("Networking"): the plan is
// recorded before a plugin runs, the namespace is pinned, ADD runs per network; teardown (DEL in
// reverse, then the pin) runs on task delete, on a shim's death, on a failed create and at boot
// for every container whose task is gone, each plugin on its own deadline. A DEL that fails
// keeps the row, with its error, for the next boot (and the next task of that container).
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import type { Database } from "better-sqlite3";
import type { Logger } from "pino";
import { failpoint } from "../failpoint.js";
import { loadAll, loadNetwork } from "./conf.js";
import { DEFAULT_NETWORK, writeDefaultBridge } from "./default-bridge.js";
import { parseNetLabels } from "./labels.js";
import { type NetPlan, type NetRow, NetStore } from "./net-store.js";
import { isPinned, pinNetns, pinPath, unpinNetns } from "./netns-pin.js";
import { CniRunner } from "./runner.js";

/** Containers.Get/List show a container's network state in this extension (JSON value). */
export const NET_STATUS_EXTENSION = "io.tsrunc.net/status";
export const NET_STATUS_TYPE_URL = "types.tsrunc.io/net/Status";

export interface NetworkOptions {
  confDir: string;
  binDirs: readonly string[];
  /** Where namespaces are pinned: <state>/.netns. */
  pinDir: string;
  log: Logger;
  /** Deadline of each plugin call (default 60 s). */
  pluginTimeoutMs?: number;
}

export class NetworkManager {
  readonly store: NetStore;
  readonly runner: CniRunner;
  /** Set while GC runs: a new attachment waits, so GC never sees a lease it was not told of. */
  #gcGate: Promise<unknown> | undefined;

  constructor(
    db: Database,
    readonly opts: NetworkOptions,
  ) {
    this.store = new NetStore(db);
    this.runner = new CniRunner({ binDirs: opts.binDirs, timeoutMs: opts.pluginTimeoutMs ?? 60_000 });
  }

  /**
   * What a task of a container with these labels will attach to, with every configuration
   * loaded: a missing network or a broken file fails here, before any shim starts.
   * undefined when the container wants no CNI network.
   */
  async plan(
    namespace: string,
    id: string,
    labels: Readonly<Record<string, string>>,
  ): Promise<NetPlan | undefined> {
    const req = parseNetLabels(labels);
    if (req.mode !== "cni") return undefined;
    const nets = [];
    for (const [i, name] of req.networks.entries()) {
      let conf = await loadNetwork(this.opts.confDir, name);
      if (!conf && name === DEFAULT_NETWORK) {
        const file = await writeDefaultBridge(this.opts.confDir);
        this.opts.log.info({ file }, "wrote the default bridge network's configuration");
        conf = await loadNetwork(this.opts.confDir, name);
      }
      if (!conf)
        throw new TtrpcError(
          Code.NotFound,
          `network ${JSON.stringify(name)}: no configuration of that name in ${this.opts.confDir}`,
        );
      // STATUS (1.1.0 lists only): a plugin not ready for ADD fails the run before anything exists.
      await this.runner.status(conf);
      nets.push({ name, ifname: `eth${i}`, conf });
    }
    return { cniId: `${namespace}-${id}`, ports: req.ports, nets };
  }

  /** ADD of every network of the plan into the netns of `pid`. Caller holds the container's lock. */
  async attach(namespace: string, id: string, pid: number, plan: NetPlan): Promise<void> {
    const log = this.opts.log.child({ namespace, id });
    // A teardown of an earlier task of this container that never succeeded goes first.
    if (this.store.find(namespace, id) && !(await this.detach(namespace, id)))
      throw new TtrpcError(
        Code.FailedPrecondition,
        `container ${JSON.stringify(id)}: the networks of its previous task could not be removed: ${this.store.find(namespace, id)?.error ?? "unknown error"}`,
      );
    const row: NetRow = {
      namespace,
      id,
      phase: "attaching",
      netns: pinPath(this.opts.pinDir, namespace, id),
      plan,
      results: [],
      attempts: 0,
      updatedAt: new Date(),
    };
    // Recorded before the pin and before any plugin: a crash from here on is torn down at boot.
    // (No await between the gate and the record: a GC that starts later reads this row.)
    while (this.#gcGate) await this.#gcGate;
    this.store.put(row);
    let at: { ifname: string; plugin: number } | undefined;
    try {
      failpoint("net:recorded");
      await pinNetns(pid, row.netns);
      failpoint("net:pinned");
      for (const net of plan.nets) {
        const t0 = performance.now();
        const out = await this.runner.add(
          net.conf,
          {
            containerId: plan.cniId,
            netns: row.netns,
            ifname: net.ifname,
            capabilityArgs: { portMappings: plan.ports },
          },
          (plugin) => {
            at = { ifname: net.ifname, plugin };
          },
          (_plugin, raw) => {
            row.pending = { ifname: net.ifname, raw };
            row.updatedAt = new Date();
            this.store.put(row);
          },
        );
        failpoint("net:added");
        row.results.push({ name: net.name, ifname: net.ifname, raw: out.raw, result: out.result });
        delete row.pending;
        row.updatedAt = new Date();
        this.store.put(row);
        log.info(
          { network: net.name, ifname: net.ifname, ms: Math.round(performance.now() - t0) },
          "network attached",
        );
      }
      row.phase = "attached";
      row.updatedAt = new Date();
      this.store.put(row);
    } catch (err) {
      log.warn({ err: (err as Error).message }, "network attach failed; removing what was added");
      if (at)
        this.store.put({
          ...row,
          failedAdd: { ...at, error: (err as Error).message },
          updatedAt: new Date(),
        });
      await this.detach(namespace, id);
      throw err;
    }
  }

  /**
   * DEL of every network in reverse, then the pin. Never throws: false when something failed,
   * the error kept in the row (shown by Containers.Get) for a later retry.
   */
  async detach(namespace: string, id: string): Promise<boolean> {
    const row = this.store.find(namespace, id);
    if (!row) return true;
    const log = this.opts.log.child({ namespace, id });
    const t0 = performance.now();
    row.phase = "detaching";
    row.attempts++;
    row.updatedAt = new Date();
    this.store.put(row);
    // With the pin gone (a reboot emptied <state>), DEL runs with an empty netns path, as CRI does.
    failpoint("net:detaching");
    const netns = (await isPinned(row.netns)) ? row.netns : "";
    const errors: string[] = [];
    const failed = row.failedAdd;
    const failedNet = failed ? row.plan.nets.findIndex((n) => n.ifname === failed.ifname) : -1;
    for (const [n, net] of [...row.plan.nets.entries()].reverse()) {
      const prev =
        row.results.find((r) => r.ifname === net.ifname)?.raw ??
        (row.pending?.ifname === net.ifname ? row.pending.raw : undefined);
      // DEL errors that cannot mean a leak (see NetRow.failedAdd).
      const ignore = (i: number, err: unknown) =>
        failed !== undefined &&
        (n > failedNet ||
          (n === failedNet &&
            (i > failed.plugin ||
              (i === failed.plugin &&
                (err as Error).message.replace("CNI DEL", "CNI ADD") === failed.error))));
      try {
        await this.runner.del(
          net.conf,
          {
            containerId: row.plan.cniId,
            netns,
            ifname: net.ifname,
            capabilityArgs: { portMappings: row.plan.ports },
          },
          prev,
          ignore,
        );
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    if (errors.length === 0) {
      try {
        await unpinNetns(row.netns);
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    if (errors.length) {
      row.error = errors.join("; ");
      row.updatedAt = new Date();
      this.store.put(row);
      log.warn(
        { err: row.error, attempts: row.attempts },
        "network teardown failed; retried at the next boot",
      );
      return false;
    }
    this.store.delete(namespace, id);
    log.info(
      { networks: row.plan.nets.map((n) => n.name), ms: Math.round(performance.now() - t0) },
      "networks removed",
    );
    return true;
  }

  /** Boot: tears down the networks of every container whose task is not live. */
  async reconcile(
    isLive: (namespace: string, id: string) => boolean,
    serialize: <T>(ns: string, id: string, fn: () => Promise<T>) => Promise<T>,
  ): Promise<number> {
    let n = 0;
    await Promise.all(
      this.store.list().map((r) =>
        serialize(r.namespace, r.id, async () => {
          // Re-read under the lock: a create may have attached meanwhile.
          const row = this.store.find(r.namespace, r.id);
          if (!row || (row.phase === "attached" && isLive(r.namespace, r.id))) return;
          this.opts.log.warn(
            { namespace: r.namespace, id: r.id, phase: row.phase },
            "boot: removing the networks of a task that is gone",
          );
          if (await this.detach(r.namespace, r.id)) n++;
        }),
      ),
    );
    return n;
  }

  /**
   * GC (1.1.0 lists only; Debian's plugins 1.1.1 speak at most 1.0.0): each network of the conf
   * dir is told which attachments are ours (every recorded row's), so its plugins may release
   * what a crash outside our records left. Returns the networks collected.
   */
  async gc(): Promise<string[]> {
    const run = (async () => {
      const done: string[] = [];
      const rows = this.store.list();
      for (const list of await loadAll(this.opts.confDir)) {
        const valid = rows.flatMap((r) =>
          r.plan.nets
            .filter((n) => n.name === list.name)
            .map((n) => ({ containerID: r.plan.cniId, ifname: n.ifname })),
        );
        try {
          if (await this.runner.gc(list, valid)) done.push(list.name);
        } catch (err) {
          this.opts.log.warn({ network: list.name, err: (err as Error).message }, "CNI GC failed");
        }
      }
      return done;
    })();
    this.#gcGate = run.catch(() => {});
    try {
      return await run;
    } finally {
      this.#gcGate = undefined;
    }
  }

  /** The state shown with a container; undefined when it has no networks. */
  status(namespace: string, id: string): Record<string, unknown> | undefined {
    const row = this.store.find(namespace, id);
    if (!row) return undefined;
    return {
      phase: row.phase,
      networks: row.plan.nets.map((n) => {
        const r = row.results.find((x) => x.ifname === n.ifname)?.result;
        return {
          name: n.name,
          ifname: n.ifname,
          ...(r
            ? {
                interfaces: r.interfaces,
                ips: r.ips,
                ...(r.routes.length ? { routes: r.routes } : {}),
                ...(r.dns ? { dns: r.dns } : {}),
              }
            : {}),
        };
      }),
      ...(row.plan.ports.length ? { ports: row.plan.ports } : {}),
      ...(row.error ? { error: row.error, attempts: row.attempts } : {}),
    };
  }
}
