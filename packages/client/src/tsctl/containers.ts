// tsctl containers (alias c): ls, info, rm.

import { OciSpecType, unpackAny, unpackAnyAs } from "@tsrunc/protocol";
import { Code, isCode, TtrpcError } from "@tsrunc/ttrpc";
import { type Container, isAny, type TsruncClient, tasktypes } from "../client.js";
import { sweepFifoDirs } from "../io.js";
import { timestampJson, toPlain } from "../json.js";
import { bool, type OptionSpec, parseArgs, str, UsageError } from "./args.js";
import { withClient } from "./connect.js";
import { GLOBAL_OPTIONS, type Globals, withGlobals } from "./globals.js";
import { printJson, printTable } from "./output.js";

/** The type of the `io.tsrunc.net/status` extension tsruncd fills at read time. */
export const NET_STATUS_TYPE_URL = "types.tsrunc.io/net/Status";
export const NET_STATUS_EXTENSION = "io.tsrunc.net/status";

const FORMAT: OptionSpec = { name: "format", type: "string" };

/** A container as JSON: spec and runtime options decoded, times as RFC 3339. */
export function containerJson(c: Container): Record<string, unknown> {
  const decode = (any: Container["spec"]) => {
    if (any == null) return undefined;
    try {
      if (any.typeUrl === OciSpecType.typeUrl) return unpackAnyAs(any, OciSpecType);
      // tsruncd's network state (interfaces, IPs, ports, a pending teardown's error): JSON.
      if (any.typeUrl === NET_STATUS_TYPE_URL)
        return JSON.parse(new TextDecoder().decode(any.value)) as unknown;
      return toPlain(unpackAny(any));
    } catch {
      return { typeUrl: any.typeUrl, value: toPlain(any.value) };
    }
  };
  const extensions: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(c.extensions)) extensions[k] = isAny(v) ? decode(v) : v;
  return {
    id: c.id,
    labels: c.labels,
    image: c.image,
    runtime:
      c.runtime === undefined ? undefined : { name: c.runtime.name, options: decode(c.runtime.options) },
    spec: decode(c.spec),
    snapshotter: c.snapshotter,
    snapshotKey: c.snapshotKey,
    createdAt: timestampJson(c.createdAt),
    updatedAt: timestampJson(c.updatedAt),
    extensions,
  };
}

function formatOf(v: string | undefined): "table" | "json" {
  if (v === undefined || v === "table") return "table";
  if (v === "json") return "json";
  throw new UsageError(`unknown --format ${JSON.stringify(v)} (use json)`);
}

async function ls(argv: string[], base: Globals): Promise<number> {
  const p = parseArgs(argv, [...GLOBAL_OPTIONS, FORMAT, { name: "quiet", short: "q", type: "boolean" }]);
  const format = formatOf(str(p, "format"));
  return withClient(withGlobals(base, p), async (client) => {
    const list = await client.containers.list(p.positionals);
    list.sort((a, b) => a.id.localeCompare(b.id));
    if (format === "json") printJson(list.map(containerJson));
    else if (bool(p, "quiet")) process.stdout.write(list.map((c) => `${c.id}\n`).join(""));
    else
      printTable(
        ["CONTAINER", "IMAGE", "RUNTIME"],
        list.map((c) => [c.id, c.image || "-", c.runtime?.name || "-"]),
      );
    return 0;
  });
}

async function info(argv: string[], base: Globals): Promise<number> {
  const p = parseArgs(argv, GLOBAL_OPTIONS);
  const [id, ...extra] = p.positionals;
  if (id === undefined) throw new UsageError("containers info needs a container ID");
  if (extra.length > 0) throw new UsageError("containers info takes one container ID");
  return withClient(withGlobals(base, p), async (client) => {
    printJson(containerJson(await client.containers.get(id)), true);
    return 0;
  });
}

const STOPPED_OR_CREATED = new Set([tasktypes.Status.STOPPED, tasktypes.Status.CREATED]);

/**
 * ctr's rule: a container goes only with no task, or a stopped (or never started) one; its
 * snapshot goes with it (ctr's WithSnapshotCleanup; one already gone is fine).
 */
export async function removeContainer(client: TsruncClient, id: string, fifoRoot: string): Promise<void> {
  const container = await client.containers.get(id);
  let status: tasktypes.Status | undefined;
  try {
    status = (await client.tasks.get({ containerId: id })).status;
  } catch (err) {
    if (!isCode(err, Code.NotFound)) throw err;
  }
  if (status !== undefined) {
    if (!STOPPED_OR_CREATED.has(status)) {
      throw new TtrpcError(
        Code.FailedPrecondition,
        `cannot remove container ${id}: its task is ${tasktypes.Status[status]?.toLowerCase() ?? status} (stop it, or tsctl tasks rm -f ${id})`,
      );
    }
    await client.tasks.delete({ containerId: id });
  }
  await client.containers.delete(id);
  if (container.snapshotKey !== "") {
    await client.snapshots.removeIfExists(container.snapshotKey, {
      ...(container.snapshotter !== "" ? { snapshotter: container.snapshotter } : {}),
    });
  }
  await sweepFifoDirs({ root: fifoRoot, namespace: client.namespace, containerId: id }).catch(() => []);
}

async function rm(argv: string[], base: Globals): Promise<number> {
  const p = parseArgs(argv, GLOBAL_OPTIONS);
  if (p.positionals.length === 0) throw new UsageError("containers rm needs at least one container ID");
  const g = withGlobals(base, p);
  return withClient(g, async (client) => {
    const failures: unknown[] = [];
    for (const id of p.positionals) {
      try {
        await removeContainer(client, id, g.fifoDir);
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
  info,
  rm,
  delete: rm,
  del: rm,
  remove: rm,
};

export async function main(argv: string[], g: Globals): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) throw new UsageError("containers needs a command: ls, info or rm");
  const sub = SUBCOMMANDS[name];
  if (sub === undefined) throw new UsageError(`no such command: containers ${name}`);
  return sub(rest, g);
}
