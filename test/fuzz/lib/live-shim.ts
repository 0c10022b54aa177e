// A live shim binary for the fuzz campaigns, built on test/helpers/shim.ts's environment (temp
// root, bundle from `runc spec` + busybox, stand-in events server) but started without -debug
// (a debug line per call would slow every campaign), with a sentinel container running beside
// it and a sentinel connection holding a Wait on it: after a campaign both must be untouched.
import * as fs from "node:fs";
import * as path from "node:path";
import { TaskService, tasktypes } from "@tsrunc/protocol";
import { Client, type ClientStub } from "@tsrunc/ttrpc";
import { execa } from "execa";
import { SHIM_BIN, type ShimEnv, shimEnv } from "../../helpers/shim.js";
import { waitFor } from "../../helpers/wait.js";
import { fdTargets, type ProcSnapshot, settle, snapshot } from "./health.js";
import type { TapTest } from "./tap.js";

export const SENTINEL = "sentinel";

export interface LiveShim {
  env: ShimEnv;
  /** The id the shim was started for; its bundle is `bundle`. */
  id: string;
  bundle: string;
  /** Where sibling bundles live (containerd's <state>/<namespace>). */
  bundlesDir: string;
  pid: number;
  /** unix:///… */
  address: string;
  sock: string;
  client: Client;
  task: ClientStub<typeof TaskService>;
  /** A fresh connection, closed at teardown. */
  connect(): Promise<{ client: Client; task: ClientStub<typeof TaskService> }>;
  /** Baseline for health(): taken once the shim is set up (call again to move it). */
  baseline: ProcSnapshot;
  /** Item-5 checks after a campaign; returns the problems (empty when healthy). */
  health(opts?: { rssGrowthMiB?: number; fdSlack?: number }): Promise<string[]>;
}

export interface LiveShimOptions {
  /** Own bundle's container command (default: sleep). */
  args?: string[];
  /** Start a sentinel container and hold a Wait on it (default true). */
  sentinel?: boolean;
  debug?: boolean;
}

export async function liveShim(t: TapTest, opts: LiveShimOptions = {}): Promise<LiveShim> {
  const env = await shimEnv(t);
  const id = "fz";
  const bundle = await env.bundle(id, opts.args ?? ["/bin/sleep", "100000"]);
  const shimArgs = ["-namespace", env.namespace, "-address", env.address, "-publish-binary", "/bin/true"];
  const envArgs = Object.entries(env.env).map(([k, v]) => `${k}=${v}`);
  // A private copy of the binary and its addon: a build elsewhere rewrites dist/bin's addon in
  // place, and a process that has it mapped then crashes at its next call into it.
  const bin = path.join(env.root.path, "bin");
  fs.mkdirSync(bin);
  for (const f of fs.readdirSync(path.dirname(SHIM_BIN)))
    fs.copyFileSync(path.join(path.dirname(SHIM_BIN), f), path.join(bin, f));
  const shimBin = path.join(bin, path.basename(SHIM_BIN));
  // Through `env -i`, as shimEnv does: tap re-injects NODE_OPTIONS into every child.
  const r = await execa(
    "env",
    ["-i", ...envArgs, shimBin, ...shimArgs, "-id", id, ...(opts.debug ? ["-debug"] : []), "start"],
    { cwd: bundle, stdin: "ignore", all: true },
  );
  const address = String(r.all);
  const sock = address.replace(/^unix:\/\//, "");
  env.root.scope.sockets.add(sock);
  const pid = env.shimPids()[0]!;
  const clients: Client[] = [];
  t.teardown(async () => {
    for (const c of clients) await c.close().catch(() => {});
  });
  const connect = async () => {
    const client = await Client.connect(address, { timeoutMs: 5000 });
    clients.push(client);
    return { client, task: client.service(TaskService) };
  };
  const main = await connect();

  let sentinelWait: { settled: boolean; error?: unknown } | undefined;
  let sentinelConn: Awaited<ReturnType<typeof connect>> | undefined;
  if (opts.sentinel ?? true) {
    const sb = await env.bundle(SENTINEL, ["/bin/sleep", "100000"]);
    await main.task.create({ id: SENTINEL, bundle: sb });
    await main.task.start({ id: SENTINEL });
    sentinelConn = await connect();
    const w = { settled: false } as { settled: boolean; error?: unknown };
    sentinelConn.task.wait({ id: SENTINEL }).then(
      () => {
        w.settled = true;
      },
      (err: unknown) => {
        w.settled = true;
        w.error = err;
      },
    );
    sentinelWait = w;
    // Leave nothing running whatever happens to the test (the temp root's sweep is the last resort).
    t.teardown(async () => {
      await main.task.kill({ id: SENTINEL, signal: 9 }, { timeoutMs: 5000 }).catch(() => {});
      await main.task.wait({ id: SENTINEL }, { timeoutMs: 5000 }).catch(() => {});
      await main.task.delete({ id: SENTINEL }, { timeoutMs: 5000 }).catch(() => {});
    });
  }

  // The baseline once the shim has settled: its events delivered (the publisher's connection
  // open) and the fd count steady.
  if (sentinelWait) {
    await waitFor(() => env.events.length >= 2, { what: "sentinel events", timeoutMs: 10000 });
  } else {
    // Without a sentinel, one Create and Delete opens the events connection before the baseline.
    await main.task.create({ id, bundle });
    await main.task.delete({ id });
    await waitFor(() => env.events.length >= 2, { what: "warm-up events", timeoutMs: 10000 });
  }
  // Steady: the same count twice in a row, 200 ms at the earliest; 2 s at the most.
  let prev = snapshot(pid).fds;
  let polls = 0;
  await waitFor(
    () => {
      const now = snapshot(pid).fds;
      const steady = now === prev && polls >= 4;
      prev = now;
      polls++;
      return steady;
    },
    { what: "the shim's fd count to hold still", timeoutMs: 2000, intervalMs: 50 },
  ).catch(() => {});

  const shim: LiveShim = {
    env,
    id,
    bundle,
    bundlesDir: path.dirname(bundle),
    pid,
    address,
    sock,
    client: main.client,
    task: main.task,
    connect,
    baseline: snapshot(pid),
    async health(o = {}) {
      const problems: string[] = [];
      const base = shim.baseline;
      const s0 = snapshot(pid);
      if (!s0.alive) return [`shim ${pid} is gone`];
      // A well-formed State on a new connection.
      const fresh = await Client.connect(address, { timeoutMs: 5000 }).catch((e: Error) => e);
      if (fresh instanceof Error) problems.push(`new connection refused: ${fresh.message}`);
      else {
        const st = await fresh
          .service(TaskService)
          .state({ id: sentinelWait ? SENTINEL : "no-such-container" }, { timeoutMs: 5000 })
          .catch((e: Error) => e);
        if (sentinelWait) {
          if (st instanceof Error) problems.push(`State on a new connection failed: ${st.message}`);
          else if (st.status !== tasktypes.Status.RUNNING)
            problems.push(`sentinel is ${st.status}, not RUNNING`);
        } else if (!(st instanceof Error) || (st as { code?: number }).code !== 5) {
          problems.push(`State of an unknown id on a new connection: ${String(st)}`);
        }
        await fresh.close();
      }
      // The sentinel connection: its Wait still pending, and it still answers.
      if (sentinelWait && sentinelConn) {
        if (sentinelWait.settled) problems.push(`the sentinel's Wait ended: ${String(sentinelWait.error)}`);
        const st = await sentinelConn.task
          .state({ id: SENTINEL }, { timeoutMs: 5000 })
          .catch((e: Error) => e);
        if (st instanceof Error) problems.push(`sentinel connection broken: ${st.message}`);
      }
      const fdSlack = o.fdSlack ?? 0;
      const fds = await settle(pid, (s) => s.fds <= base.fds + fdSlack, 8000);
      if (!fds.ok)
        problems.push(
          `shim fds ${fds.snap.fds}, baseline ${base.fds}: ${fdTargets(pid)
            .slice(base.fds - 3)
            .join(", ")}`,
        );
      const z = await settle(pid, (s) => s.zombies.length === 0, 5000);
      if (!z.ok) problems.push(`zombie children of the shim: ${z.snap.zombies.join(" ")}`);
      const growth = (z.snap.rssKiB - base.rssKiB) / 1024;
      if (growth > (o.rssGrowthMiB ?? 150)) problems.push(`shim RSS grew by ${growth.toFixed(1)} MiB`);
      if (!z.snap.alive) problems.push("shim died during the checks");
      return problems;
    },
  };
  return shim;
}
