// The `networks` table (migration 3): one row per container that has, or may still have, CNI
// networks. Written before any plugin runs, so whatever ADD may have made is found again; kept
// with the error of a failed DEL until a DEL succeeds (boot retries it). No foreign key to
// containers: a pending teardown outlives the container record.
import type { Database } from "better-sqlite3";
import type { NetworkConfList } from "./conf.js";
import type { CniResult, PortMapping } from "./index.js";

export type NetPhase = "attaching" | "attached" | "detaching";

export interface NetPlanEntry {
  name: string;
  ifname: string;
  /** The list as ADD ran it; DEL runs the same even if the file changed or went away. */
  conf: NetworkConfList;
}

export interface NetPlan {
  /** CNI_CONTAINERID: `<namespace>-<id>`, as ctr. */
  cniId: string;
  ports: PortMapping[];
  nets: NetPlanEntry[];
}

export interface NetResult {
  name: string;
  ifname: string;
  raw: unknown;
  result: CniResult;
}

export interface NetRow {
  namespace: string;
  id: string;
  phase: NetPhase;
  /** The pin's path. */
  netns: string;
  plan: NetPlan;
  results: NetResult[];
  /**
   * Where a failed ADD stopped: the network, the plugin that failed and its message. DEL errors
   * of plugins that never ran ADD are then ignored, and so is the failed plugin's when it
   * refuses the configuration with the very message of its ADD (it made nothing). Unknown after
   * a crash mid-ADD: every DEL error then counts.
   */
  failedAdd?: { ifname: string; plugin: number; error: string };
  /**
   * The result of the last plugin that returned while a network's ADD is still under way
   * (recorded after every plugin). A crash before the network's entry in `results` is written
   * still leaves DEL a prevResult: without one, the firewall plugin's DEL removes nothing and
   * its rules for the container's address stay (found by test/daemon-network's crash points).
   */
  pending?: { ifname: string; raw: unknown };
  error?: string;
  attempts: number;
  updatedAt: Date;
}

interface Row {
  namespace: string;
  container_id: string;
  phase: string;
  netns: string;
  plan: string;
  results: string;
  error: string | null;
  attempts: number;
  updated_at: number;
}

const fromRow = (r: Row): NetRow => ({
  namespace: r.namespace,
  id: r.container_id,
  phase: r.phase as NetPhase,
  netns: r.netns,
  plan: JSON.parse(r.plan) as NetPlan,
  ...(JSON.parse(r.results) as Pick<NetRow, "results" | "failedAdd" | "pending">),
  ...(r.error !== null ? { error: r.error } : {}),
  attempts: r.attempts,
  updatedAt: new Date(r.updated_at),
});

export class NetStore {
  readonly #q;

  constructor(db: Database) {
    this.#q = {
      get: db.prepare<[string, string], Row>(
        "SELECT * FROM networks WHERE namespace = ? AND container_id = ?",
      ),
      all: db.prepare<[], Row>("SELECT * FROM networks ORDER BY namespace, container_id"),
      put: db.prepare(
        `INSERT INTO networks (namespace, container_id, phase, netns, plan, results, error, attempts, updated_at)
         VALUES (@namespace, @container_id, @phase, @netns, @plan, @results, @error, @attempts, @updated_at)
         ON CONFLICT (namespace, container_id) DO UPDATE SET phase = excluded.phase, netns = excluded.netns,
           plan = excluded.plan, results = excluded.results, error = excluded.error,
           attempts = excluded.attempts, updated_at = excluded.updated_at`,
      ),
      del: db.prepare<[string, string]>("DELETE FROM networks WHERE namespace = ? AND container_id = ?"),
    };
  }

  find(namespace: string, id: string): NetRow | undefined {
    const r = this.#q.get.get(namespace, id);
    return r ? fromRow(r) : undefined;
  }

  list(): NetRow[] {
    return this.#q.all.all().map(fromRow);
  }

  put(r: NetRow): void {
    this.#q.put.run({
      namespace: r.namespace,
      container_id: r.id,
      phase: r.phase,
      netns: r.netns,
      plan: JSON.stringify(r.plan),
      results: JSON.stringify({
        results: r.results,
        ...(r.failedAdd ? { failedAdd: r.failedAdd } : {}),
        ...(r.pending ? { pending: r.pending } : {}),
      }),
      error: r.error ?? null,
      attempts: r.attempts,
      updated_at: r.updatedAt.getTime(),
    });
  }

  delete(namespace: string, id: string): void {
    this.#q.del.run(namespace, id);
  }
}
