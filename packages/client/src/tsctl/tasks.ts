// tsctl tasks (alias t): ls, ps, kill, exec, attach, wait, pause, resume, metrics, rm.

import { isAnyOf, runcoptions, unpackAny, unpackAnyAs } from "@tsrunc/protocol";
import { Code, isCode, TtrpcError } from "@tsrunc/ttrpc";
import { isAny, type Process, type ProcessInfo, type TsruncClient, tasktypes } from "../client.js";
import { sweepFifoDirs } from "../io.js";
import { timestampJson, toPlain } from "../json.js";
import { bool, type OptionSpec, type Parsed, parseArgs, str, UsageError } from "./args.js";
import { attach } from "./attach.js";
import { withClient } from "./connect.js";
import { NET_STATUS_EXTENSION, NET_STATUS_TYPE_URL } from "./containers.js";
import { exec } from "./exec.js";
import { GLOBAL_OPTIONS, type Globals, withGlobals } from "./globals.js";
import { formatMetrics, metricsJson } from "./metrics.js";
import { printJson, printTable } from "./output.js";

const FORMAT: OptionSpec = { name: "format", type: "string" };

function formatOf(p: Parsed): "table" | "json" {
  const v = str(p, "format");
  if (v === undefined || v === "table") return "table";
  if (v === "json") return "json";
  throw new UsageError(`unknown --format ${JSON.stringify(v)} (use json)`);
}

/** Exactly one ID among the positionals. */
function oneId(p: Parsed, what: string): string {
  const [id, ...extra] = p.positionals;
  if (id === undefined) throw new UsageError(`tasks ${what} needs a container ID`);
  if (extra.length > 0) throw new UsageError(`tasks ${what} takes one container ID`);
  return id;
}

export function statusName(s: tasktypes.Status): string {
  return tasktypes.Status[s] ?? String(s);
}

export function taskJson(t: Process): Record<string, unknown> {
  const out: Record<string, unknown> = { id: t.containerId, pid: t.pid, status: statusName(t.status) };
  if (t.id !== "" && t.id !== t.containerId) out.execId = t.id;
  if (t.status === tasktypes.Status.STOPPED) {
    out.exitStatus = t.exitStatus;
    const at = timestampJson(t.exitedAt);
    if (at !== undefined) out.exitedAt = at;
  }
  return out;
}

/** TASK PID STATUS, and EXIT when any task has stopped. */
export function taskRows(tasks: readonly Process[]): { header: string[]; rows: string[][] } {
  const anyStopped = tasks.some((t) => t.status === tasktypes.Status.STOPPED);
  const header = anyStopped ? ["TASK", "PID", "STATUS", "EXIT"] : ["TASK", "PID", "STATUS"];
  const rows = tasks.map((t) => {
    const row = [t.containerId, String(t.pid), statusName(t.status)];
    if (anyStopped) row.push(t.status === tasktypes.Status.STOPPED ? String(t.exitStatus) : "-");
    return row;
  });
  return { header, rows };
}

async function ls(argv: string[], base: Globals): Promise<number> {
  const p = parseArgs(argv, [...GLOBAL_OPTIONS, FORMAT]);
  const format = formatOf(p);
  if (p.positionals.length > 0) throw new UsageError("tasks ls takes no arguments");
  return withClient(withGlobals(base, p), async (client) => {
    const tasks = (await client.tasks.list()).sort((a, b) => a.containerId.localeCompare(b.containerId));
    if (format === "json") {
      // Each task with its container's networks (interfaces, IPs), as Containers.List shows them.
      const nets = new Map<string, unknown>();
      for (const c of await client.containers.list()) {
        const st = c.extensions[NET_STATUS_EXTENSION];
        if (st && isAny(st) && st.typeUrl === NET_STATUS_TYPE_URL)
          nets.set(c.id, JSON.parse(new TextDecoder().decode(st.value)) as unknown);
      }
      printJson(
        tasks.map((t) => {
          const j = taskJson(t);
          const n = nets.get(t.containerId);
          return n === undefined ? j : { ...j, network: n };
        }),
      );
    } else {
      const { header, rows } = taskRows(tasks);
      printTable(header, rows);
    }
    return 0;
  });
}

/** The exec id a runc shim puts in ProcessInfo.info, or undefined. */
export function execIdOf(info: ProcessInfo): string | undefined {
  if (!isAnyOf(info.info, runcoptions.ProcessDetails)) return undefined;
  try {
    return unpackAnyAs(info.info!, runcoptions.ProcessDetails).execId || undefined;
  } catch {
    return undefined;
  }
}

async function ps(argv: string[], base: Globals): Promise<number> {
  const p = parseArgs(argv, [...GLOBAL_OPTIONS, FORMAT]);
  const format = formatOf(p);
  const id = oneId(p, "ps");
  return withClient(withGlobals(base, p), async (client) => {
    const procs = await client.tasks.pids({ containerId: id });
    if (format === "json") {
      printJson(
        procs.map((x) => {
          let info: unknown = null;
          if (x.info != null) {
            try {
              info = toPlain(unpackAny(x.info));
            } catch {
              info = { typeUrl: x.info.typeUrl };
            }
          }
          return { pid: x.pid, info };
        }),
      );
    } else {
      printTable(
        ["PID", "INFO"],
        procs.map((x) => [String(x.pid), execIdOf(x) ?? "-"]),
      );
    }
    return 0;
  });
}

async function kill(argv: string[], base: Globals): Promise<number> {
  const p = parseArgs(argv, [
    ...GLOBAL_OPTIONS,
    { name: "signal", short: "s", type: "string" },
    { name: "all", type: "boolean" },
    { name: "exec-id", type: "string" },
  ]);
  const id = oneId(p, "kill");
  const execId = str(p, "exec-id");
  if (execId !== undefined && bool(p, "all"))
    throw new UsageError("--all and --exec-id cannot be used together");
  return withClient(withGlobals(base, p), async (client) => {
    await client.tasks.kill({
      containerId: id,
      signal: str(p, "signal") ?? "SIGTERM",
      all: bool(p, "all"),
      ...(execId !== undefined ? { execId } : {}),
    });
    return 0;
  });
}

async function wait(argv: string[], base: Globals): Promise<number> {
  const p = parseArgs(argv, [...GLOBAL_OPTIONS, { name: "exec-id", type: "string" }]);
  const id = oneId(p, "wait");
  const execId = str(p, "exec-id");
  return withClient(withGlobals(base, p), async (client) => {
    const res = await client.tasks.wait({ containerId: id, ...(execId !== undefined ? { execId } : {}) });
    process.stdout.write(`${res.exitStatus}\n`);
    return 0;
  });
}

function simple(what: "pause" | "resume") {
  return async (argv: string[], base: Globals): Promise<number> => {
    const p = parseArgs(argv, GLOBAL_OPTIONS);
    const id = oneId(p, what);
    return withClient(withGlobals(base, p), async (client) => {
      await client.tasks[what]({ containerId: id });
      return 0;
    });
  };
}

async function metrics(argv: string[], base: Globals): Promise<number> {
  const p = parseArgs(argv, [...GLOBAL_OPTIONS, FORMAT]);
  const format = formatOf(p);
  const id = oneId(p, "metrics");
  return withClient(withGlobals(base, p), async (client) => {
    const list = await client.tasks.metrics([`id==${id}`]);
    if (format === "json") printJson(metricsJson(list));
    else process.stdout.write(formatMetrics(id, list));
    return 0;
  });
}

/**
 * Deletes a task, as ctr's `tasks rm`: a stopped one, or with force any (SIGKILL to all its
 * processes, resumed if paused so the kill lands, then waited for). Its fifos go with it.
 */
export async function removeTask(
  client: TsruncClient,
  id: string,
  force: boolean,
  fifoRoot: string,
): Promise<number> {
  const ref = { containerId: id };
  const t = await client.tasks.get(ref);
  const stopped = t.status === tasktypes.Status.STOPPED || t.status === tasktypes.Status.UNKNOWN;
  if (!stopped && !force) {
    throw new TtrpcError(
      Code.FailedPrecondition,
      `task ${id} must be stopped before deletion: it is ${statusName(t.status).toLowerCase()} (use -f to kill it)`,
    );
  }
  if (!stopped) {
    const exit = client.tasks.wait(ref);
    exit.catch(() => {});
    await client.tasks.kill({ ...ref, signal: "SIGKILL", all: true }).catch((err) => {
      if (!isCode(err, Code.NotFound)) throw err;
    });
    if (t.status === tasktypes.Status.PAUSED || t.status === tasktypes.Status.PAUSING) {
      await client.tasks.resume(ref).catch(() => {});
    }
    await exit;
  }
  const res = await client.tasks.delete(ref);
  await sweepFifoDirs({ root: fifoRoot, namespace: client.namespace, containerId: id }).catch(() => []);
  return res.exitStatus;
}

async function rm(argv: string[], base: Globals): Promise<number> {
  const p = parseArgs(argv, [...GLOBAL_OPTIONS, { name: "force", short: "f", type: "boolean" }]);
  if (p.positionals.length === 0) throw new UsageError("tasks rm needs at least one container ID");
  const g = withGlobals(base, p);
  return withClient(g, async (client) => {
    const failures: unknown[] = [];
    for (const id of p.positionals) {
      try {
        await removeTask(client, id, bool(p, "force"), g.fifoDir);
      } catch (err) {
        if (isCode(err, Code.Unavailable)) throw err;
        failures.push(err);
      }
    }
    if (failures.length === 0) return 0;
    const first = failures[0] as Error;
    if (failures.length === 1) throw first;
    throw new Error(`${first.message} (and ${failures.length - 1} more failed)`, { cause: first });
  });
}

const SUBCOMMANDS: Record<string, (argv: string[], g: Globals) => Promise<number>> = {
  ls,
  list: ls,
  ps,
  kill,
  exec,
  attach,
  wait,
  pause: simple("pause"),
  resume: simple("resume"),
  metrics,
  metric: metrics,
  rm,
  delete: rm,
  del: rm,
  remove: rm,
};

export async function main(argv: string[], g: Globals): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) throw new UsageError("tasks needs a command (see tsctl help tasks)");
  const sub = SUBCOMMANDS[name];
  if (sub === undefined) throw new UsageError(`no such command: tasks ${name}`);
  return sub(rest, g);
}
