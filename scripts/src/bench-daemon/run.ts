// Section 1: `tsctl run --rm --rootfs DIR id /bin/true` through tsruncd against
// `ctr run --rm --rootfs DIR id /bin/true` through a private containerd 1.6 with the Go shim,
// interleaved (which goes first alternates), and where ours spends its time.

import { join } from "node:path";
import { execa } from "execa";
import type { Containerd } from "../../../test/helpers/containerd.js";
import { ratio, sleep, summary } from "../bench-shim/measure.js";
import type { BenchDaemon, LogLine } from "./daemon.js";
import { type ConnTiming, TimingProxy } from "./proxy.js";
import { BREAKDOWN_ROWS, type BreakdownResult, type BreakdownRow, GO_RT, type RunResult } from "./report.js";

export interface RunContext {
  d: BenchDaemon;
  cd: Containerd;
  /** The rootfs ctr runs (the harness's busybox). */
  ctrRootfs: string;
  note: (msg: string) => void;
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

async function ours(d: BenchDaemon, id: string, address?: string) {
  const r = await d.tsctlOk(
    ["run", "--rm", "--rootfs", d.rootfs, id, "/bin/true"],
    address ? { address, timeoutMs: 30_000 } : { timeoutMs: 30_000 },
  );
  return r;
}

async function theirs(cd: Containerd, rootfs: string, id: string): Promise<number> {
  const t0 = performance.now();
  const r = await cd.ctr(["run", "--rm", "--runtime", GO_RT, "--rootfs", rootfs, id, "/bin/true"], {
    timeout: 30_000,
  });
  const dt = performance.now() - t0;
  if (r.exitCode !== 0) throw new Error(`${r.command}: exit ${r.exitCode}: ${r.stderr.trim()}`);
  return dt;
}

export async function benchRun(c: RunContext, runs: number, warmup: number): Promise<RunResult> {
  const { d, cd, ctrRootfs, note } = c;
  for (let i = 0; i < warmup; i++) {
    await ours(d, `w-ts-${i}`);
    await theirs(cd, ctrRootfs, `w-go-${i}`);
  }
  const ts: number[] = [];
  const go: number[] = [];
  const failures: string[] = [];
  const sample = async (list: number[], what: string, f: () => Promise<number>) => {
    try {
      list.push(await f());
    } catch (e) {
      failures.push(`${what}: ${message(e)}`);
      note(`FAILED: ${what}: ${message(e)}`);
    }
  };
  for (let i = 0; i < runs; i++) {
    note(`run ${i + 1}/${runs}`);
    const a = () => sample(ts, "tsctl run", async () => (await ours(d, `r-ts-${i}`)).ms);
    const b = () => sample(go, "ctr run", () => theirs(cd, ctrRootfs, `r-go-${i}`));
    if (i % 2 === 0) {
      await a();
      await b();
    } else {
      await b();
      await a();
    }
  }
  const tsS = summary(ts);
  const goS = summary(go);
  return {
    runs,
    warmup,
    ours: { ...tsS, samples: ts },
    go: { ...goS, samples: go },
    ratio: { median: ratio(tsS.median, goS.median), p90: ratio(tsS.p90, goS.p90) },
    failures,
  };
}

// ---------------------------------------------------------------------------------------------
// The breakdown: tsruncd restarted with --log-level debug --debug-shims, tsctl through the
// timing proxy. Points on one clock (epoch ms): tsctl spawned; the proxy sees its connection and
// each call's request and response; tsruncd logs "task created" (bundleMs, shimStartMs, createMs),
// relays the shim's "process exited" (its read time) and, with --debug-shims, each shim call's
// duration ("call", shim.method, shim.ms); tsctl exits.

const C = "containerd.services.containers.v1.Containers/";
const T = "containerd.services.tasks.v1.Tasks/";

function shimCallMs(lines: LogLine[], method: string): number {
  const l = lines.find(
    (x) => x.msg === "call" && (x.shim as { method?: string } | undefined)?.method === method,
  );
  const v = (l?.shim as { ms?: number } | undefined)?.ms;
  return typeof v === "number" ? v : Number.NaN;
}

/** The rows of one run (NaN where a point is missing). */
function rowsOf(
  spawnedAt: number,
  endedAt: number,
  conns: ConnTiming[],
  lines: LogLine[],
): Record<BreakdownRow, number> {
  const calls = conns.flatMap((c) => c.calls);
  const call = (name: string) => calls.find((x) => x.name === name);
  const sent = (name: string) => call(name)?.sentAt ?? Number.NaN;
  const answered = (name: string) => call(name)?.answeredAt ?? Number.NaN;
  const created = lines.find((l) => l.msg === "task created");
  const num = (v: unknown) => (typeof v === "number" ? v : Number.NaN);
  const exited = lines.find((l) => l.msg === "process exited");
  const exitAt = num(exited?.time);
  const first = calls[0]?.sentAt ?? Number.NaN;
  return {
    startup: first - spawnedAt,
    startupConnect: (conns[0]?.acceptedAt ?? Number.NaN) - spawnedAt,
    containersCreate: answered(`${C}Create`) - sent(`${C}Create`),
    clientStdio: sent(`${T}Create`) - answered(`${C}Create`),
    tasksCreate: answered(`${T}Create`) - sent(`${T}Create`),
    tcBundle: num(created?.bundleMs),
    tcShimStart: num(created?.shimStartMs),
    tcShimCreate: num(created?.createMs),
    tcShimCreateCall: shimCallMs(lines, "Create"),
    tcShimCreateWait: num(created?.createMs) - shimCallMs(lines, "Create"),
    clientWaitStart: sent(`${T}Start`) - answered(`${T}Create`),
    tasksStart: answered(`${T}Start`) - sent(`${T}Start`),
    tsShimStartCall: shimCallMs(lines, "Start"),
    startToWait: answered(`${T}Wait`) - answered(`${T}Start`),
    runUntilExit: exitAt - answered(`${T}Start`),
    exitToWait: answered(`${T}Wait`) - exitAt,
    clientAfterWait: sent(`${T}Delete`) - answered(`${T}Wait`),
    tasksDelete: answered(`${T}Delete`) - sent(`${T}Delete`),
    tdShimDeleteCall: shimCallMs(lines, "Delete"),
    tdRest: answered(`${T}Delete`) - sent(`${T}Delete`) - shimCallMs(lines, "Delete"),
    clientBetweenDeletes: sent(`${C}Delete`) - answered(`${T}Delete`),
    containersDelete: answered(`${C}Delete`) - sent(`${C}Delete`),
    exit: endedAt - answered(`${C}Delete`),
    total: endedAt - spawnedAt,
  };
}

export async function benchBreakdown(c: RunContext, runs: number, warmup: number): Promise<BreakdownResult> {
  const { d, note } = c;
  await d.stop();
  await d.start({ debug: true });
  const proxy = await TimingProxy.listen(join(d.root.path, "proxy.sock"), d.address);
  const per = Object.fromEntries(BREAKDOWN_ROWS.map((k) => [k, [] as number[]])) as Record<
    BreakdownRow,
    number[]
  >;
  const other = new Map<string, number[]>();
  try {
    for (let i = -Math.min(warmup, 1); i < runs; i++) {
      if (i >= 0) note(`breakdown ${i + 1}/${runs}`);
      const id = `b-${i + 1}`;
      const from = d.lines.length;
      const r = await ours(d, id, proxy.path);
      // The last relayed lines (the shim's "call" lines of delete and shutdown) may trail tsctl's exit.
      await sleep(30);
      const conns = proxy.take();
      if (i < 0) continue;
      const lines = d.lines.slice(from).filter((l) => l.id === id);
      const rows = rowsOf(r.spawnedAt, r.endedAt, conns, lines);
      for (const k of BREAKDOWN_ROWS) if (Number.isFinite(rows[k])) per[k].push(rows[k]);
      const known = new Set([
        `${C}Create`,
        `${C}Delete`,
        `${T}Create`,
        `${T}Start`,
        `${T}Wait`,
        `${T}Delete`,
      ]);
      for (const x of conns.flatMap((cn) => cn.calls))
        if (!known.has(x.name) && x.answeredAt !== undefined)
          other.set(x.name, [...(other.get(x.name) ?? []), x.answeredAt - x.sentAt]);
      const conn = conns.length;
      if (conn !== 1) note(`breakdown: tsctl made ${conn} connections in one run`);
    }
  } finally {
    await proxy.close();
    await d.stop();
    await d.start();
  }
  // Reference points: Node's own start-up and tsctl's without a connection.
  const nodeBare: number[] = [];
  const tsctlHelp: number[] = [];
  for (let i = 0; i < 5; i++) {
    nodeBare.push(await timedNode());
    tsctlHelp.push((await d.tsctl(["--help"])).ms);
  }
  return {
    runs,
    rows: Object.fromEntries(BREAKDOWN_ROWS.map((k) => [k, summary(per[k])])) as BreakdownResult["rows"],
    otherCalls: Object.fromEntries([...other].map(([k, v]) => [k, summary(v)])),
    nodeBare: summary(nodeBare),
    tsctlHelp: summary(tsctlHelp),
  };
}

async function timedNode(): Promise<number> {
  const t0 = performance.now();
  await execa(process.execPath, ["-e", "0"], { env: { PATH: "/usr/bin:/bin" }, extendEnv: false });
  return performance.now() - t0;
}
