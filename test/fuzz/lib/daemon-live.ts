// A live tsruncd for the hostile-peer tests and the daemon fuzz campaigns, on test/helpers/
// daemon.ts's environment (a real daemon process on the test's temp root, our shim on its PATH),
// with a sentinel container ("victim") started through tsctl with our real shim and a sentinel
// connection holding a Tasks.Wait on it. After a campaign or a hostile shim, health() checks
// what item 10 asks: the daemon alive, answering on a new connection, the sentinel RUNNING and
// its Wait untouched, its fds back to the baseline, RSS bounded, no hostile process left.
import * as fs from "node:fs";
import * as path from "node:path";
import { ContainersService, EventsService, TasksService } from "@tsrunc/protocol/daemon";
import { tasktypes } from "@tsrunc/protocol/shim";
import { Client, type ClientStub } from "@tsrunc/ttrpc";
import { type DaemonEnv, daemonEnv } from "../../helpers/daemon.js";
import { REPO } from "../../helpers/our-shim.js";
import { fdTargets, type ProcSnapshot, settle, snapshot } from "./health.js";
import type { TapTest } from "./tap.js";

export const SENTINEL = "victim";
export const HOSTILE_DIR = path.join(REPO, "test/fixtures/hostile-shims");
export const NS_KEY = "containerd-namespace";

export interface DaemonConn {
  client: Client;
  containers: ClientStub<typeof ContainersService>;
  tasks: ClientStub<typeof TasksService>;
  events: ClientStub<typeof EventsService>;
  /** Call options for the test's namespace (plus a deadline). */
  o(timeoutMs?: number): { metadata: Record<string, string>; timeoutMs: number };
}

export interface LiveDaemon {
  env: DaemonEnv;
  pid: number;
  namespace: string;
  /** <state>: bundles are <state>/<namespace>/<id>. */
  state: string;
  main: DaemonConn;
  connect(): Promise<DaemonConn>;
  baseline: ProcSnapshot;
  /** Moves the baseline to now (after the fd count holds still). */
  rebase(): Promise<void>;
  health(opts?: { rssGrowthMiB?: number; fdSlack?: number }): Promise<string[]>;
  /** Processes started from test/fixtures/hostile-shims for this daemon that are still alive. */
  hostileLeft(): { pid: number; cmd: string }[];
}

export interface LiveDaemonOptions {
  /** Extra tsruncd arguments (e.g. --shim-timeout-ms). */
  args?: string[];
  /** Symlinks put on the daemon's PATH: name → target. */
  links?: Record<string, string>;
}

function cmdline(pid: number): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim();
  } catch {
    return undefined;
  }
}

export async function liveDaemon(t: TapTest, opts: LiveDaemonOptions = {}): Promise<LiveDaemon> {
  const env = await daemonEnv(t);
  const bin = env.env.PATH!.split(":")[0]!;
  for (const [name, target] of Object.entries(opts.links ?? {})) fs.symlinkSync(target, path.join(bin, name));
  await env.start(opts.args ?? []);
  const pid = env.pid()!;
  const state = path.join(env.root.path, "state");
  const conns: Client[] = [];
  const connect = async (): Promise<DaemonConn> => {
    const client = await Client.connect(env.address, { timeoutMs: 5000 });
    conns.push(client);
    return {
      client,
      containers: client.service(ContainersService),
      tasks: client.service(TasksService),
      events: client.service(EventsService),
      o: (timeoutMs = 10_000) => ({ metadata: { [NS_KEY]: env.namespace }, timeoutMs }),
    };
  };
  t.teardown(async () => {
    for (const c of conns) await c.close().catch(() => {});
  });
  const main = await connect();

  // The sentinel, with our real shim; a Wait on it held by a connection of its own.
  const run = await env.tsctl([
    "run",
    "-d",
    "--null-io",
    "--rootfs",
    env.rootfs(SENTINEL),
    SENTINEL,
    "/bin/sleep",
    "100000",
  ]);
  if (run.exitCode !== 0) throw new Error(`sentinel run failed: ${run.stderr}`);
  t.teardown(async () => {
    const o = main.o(5000);
    await main.tasks.kill({ containerId: SENTINEL, signal: 9, all: true }, o).catch(() => {});
    await main.tasks.wait({ containerId: SENTINEL }, o).catch(() => {});
    await main.tasks.delete({ containerId: SENTINEL }, o).catch(() => {});
    await main.containers.delete({ id: SENTINEL }, o).catch(() => {});
  });
  const sentinelConn = await connect();
  const wait: { settled: boolean; error?: unknown } = { settled: false };
  sentinelConn.tasks.wait({ containerId: SENTINEL }, { metadata: { [NS_KEY]: env.namespace } }).then(
    () => {
      wait.settled = true;
    },
    (err: unknown) => {
      wait.settled = true;
      wait.error = err;
    },
  );

  // A warm-up lifecycle with our shim, so that whatever the daemon opens once is open.
  const warm = await env.tsctl([
    "run",
    "--rm",
    "--null-io",
    "--rootfs",
    env.rootfs("warm"),
    "warm",
    "/bin/true",
  ]);
  if (warm.exitCode !== 0) throw new Error(`warm-up run failed: ${warm.stderr}`);

  const steady = async () => {
    let prev = snapshot(pid).fds;
    let same = 0;
    for (let i = 0; i < 80 && same < 6; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const now = snapshot(pid).fds;
      same = now === prev ? same + 1 : 0;
      prev = now;
    }
  };
  await steady();
  let baseTargets = new Set(fdTargets(pid));

  const hostileLeft = () => {
    const out: { pid: number; cmd: string }[] = [];
    for (const name of fs.readdirSync("/proc")) {
      if (!/^[0-9]+$/.test(name)) continue;
      const cmd = cmdline(Number(name));
      if (!cmd?.includes(env.root.path)) continue;
      if (cmd.includes("/hostile-shims/") || cmd.includes("hostile-child"))
        out.push({ pid: Number(name), cmd });
    }
    return out;
  };

  const d: LiveDaemon = {
    env,
    pid,
    namespace: env.namespace,
    state,
    main,
    connect,
    baseline: snapshot(pid),
    async rebase() {
      await steady();
      d.baseline = snapshot(pid);
      baseTargets = new Set(fdTargets(pid));
    },
    hostileLeft,
    async health(o = {}) {
      const problems: string[] = [];
      if (!snapshot(pid).alive) return [`tsruncd ${pid} is gone`];
      // A new connection: the sentinel RUNNING, an unknown id NotFound, a list answered.
      const fresh = await Client.connect(env.address, { timeoutMs: 5000 }).catch((e: Error) => e);
      if (fresh instanceof Error) problems.push(`new connection refused: ${fresh.message}`);
      else {
        const tasks = fresh.service(TasksService);
        const md = { metadata: { [NS_KEY]: env.namespace }, timeoutMs: 5000 };
        const got = await tasks.get({ containerId: SENTINEL }, md).catch((e: Error) => e);
        if (got instanceof Error) problems.push(`Tasks.Get on a new connection failed: ${got.message}`);
        else if (got.process?.status !== tasktypes.Status.RUNNING)
          problems.push(`sentinel is ${got.process?.status}, not RUNNING`);
        const list = await fresh
          .service(ContainersService)
          .list({ filters: [] }, md)
          .catch((e: Error) => e);
        if (list instanceof Error)
          problems.push(`Containers.List on a new connection failed: ${list.message}`);
        await fresh.close();
      }
      if (wait.settled) problems.push(`the sentinel's Wait ended: ${String(wait.error)}`);
      const st = await sentinelConn.tasks
        .get({ containerId: SENTINEL }, sentinelConn.o(5000))
        .catch((e: Error) => e);
      if (st instanceof Error) problems.push(`sentinel connection broken: ${st.message}`);
      const base = d.baseline;
      const fds = await settle(pid, (s) => s.fds <= base.fds + (o.fdSlack ?? 0), 10_000);
      if (!fds.ok) {
        const extra = fdTargets(pid).filter((f) => !baseTargets.has(f));
        problems.push(`tsruncd fds ${fds.snap.fds}, baseline ${base.fds}; new: ${extra.join(", ")}`);
      }
      const growth = (fds.snap.rssKiB - base.rssKiB) / 1024;
      if (growth > (o.rssGrowthMiB ?? 150)) problems.push(`tsruncd RSS grew by ${growth.toFixed(1)} MiB`);
      const left = hostileLeft();
      if (left.length) problems.push(`hostile processes left: ${left.map((p) => p.cmd).join(" | ")}`);
      if (!snapshot(pid).alive) problems.push("tsruncd died during the checks");
      return problems;
    },
  };
  return d;
}
