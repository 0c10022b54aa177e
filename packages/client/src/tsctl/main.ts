#!/usr/bin/env node
// tsctl's entry: global options, the command's name, and a lazy import of that command alone,
// so that `tsctl version` does not load what `tsctl run` needs. Every failure ends here: one
// line `tsctl: …` on stderr, exit 2 for usage mistakes and 1 for everything else, and a stack
// trace only with TSRUNC_DEBUG=1.

import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs, UsageError } from "./args.js";
import { GLOBAL_OPTIONS, type Globals, globalsFromEnv, withGlobals } from "./globals.js";
import { MAIN_USAGE, USAGE } from "./help.js";

/** What a command module exports. */
export type CommandMain = (argv: string[], g: Globals) => Promise<number>;

const COMMANDS: Record<string, { usage: string; load: () => Promise<CommandMain> }> = {
  run: { usage: "run", load: async () => (await import("./run.js")).main },
  containers: { usage: "containers", load: async () => (await import("./containers.js")).main },
  tasks: { usage: "tasks", load: async () => (await import("./tasks.js")).main },
  images: { usage: "images", load: async () => (await import("./images.js")).main },
  events: { usage: "events", load: async () => (await import("./events.js")).main },
  version: { usage: "version", load: async () => (await import("./version.js")).main },
};
const ALIASES: Record<string, string> = {
  c: "containers",
  container: "containers",
  t: "tasks",
  i: "images",
  image: "images",
  task: "tasks",
  event: "events",
};

function debugging(): boolean {
  const v = process.env.TSRUNC_DEBUG;
  return v !== undefined && v !== "" && v !== "0" && v !== "false";
}

/** The one line a failure is reported as. */
export function errorLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const line = msg.replace(/\s*\n\s*/g, " ").trim() || (err instanceof Error ? err.name : "error");
  return `tsctl: ${line}`;
}

export function exitCodeOf(err: unknown): number {
  return err instanceof UsageError ? 2 : 1;
}

function report(err: unknown): number {
  process.stderr.write(`${errorLine(err)}\n`);
  if (debugging() && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return exitCodeOf(err);
}

export async function run(argv: string[]): Promise<number> {
  try {
    if (versionAsked(argv)) {
      const { clientVersion } = await import("./version.js");
      const sea = (globalThis as { __tsruncSea?: boolean }).__tsruncSea ? ", single executable" : "";
      process.stdout.write(`tsctl ${clientVersion()} (node ${process.version}${sea})\n`);
      return 0;
    }
    const p = parseArgs(argv, GLOBAL_OPTIONS, { stopAfter: 1 });
    const g = withGlobals(globalsFromEnv(), p);
    let [name, ...rest] = p.positionals;
    if (name === "help") {
      const topic = rest[0] === undefined ? undefined : (ALIASES[rest[0]] ?? rest[0]);
      const text = topic === undefined ? MAIN_USAGE : USAGE[topic];
      if (text === undefined) throw new UsageError(`no such command: ${rest[0]}`);
      process.stdout.write(text);
      return 0;
    }
    if (name === undefined) {
      if (p.values.help === true) {
        process.stdout.write(MAIN_USAGE);
        return 0;
      }
      throw new UsageError("no command given (see tsctl help)");
    }
    name = ALIASES[name] ?? name;
    const cmd = COMMANDS[name];
    if (cmd === undefined) throw new UsageError(`no such command: ${name} (see tsctl help)`);
    if (p.values.help === true || rest[0] === "--help" || rest[0] === "-h") {
      process.stdout.write(USAGE[cmd.usage] ?? MAIN_USAGE);
      return 0;
    }
    const main = await cmd.load();
    return await main(rest, g);
  } catch (err) {
    return report(err);
  }
}

/** `tsctl [global options] -v|--version`: the client's version, offline. */
function versionAsked(argv: string[]): boolean {
  const rest = argv.filter((a, i) => {
    const prev = argv[i - 1];
    if (prev !== undefined && /^(-a|--address|-n|--namespace|--fifo-dir)$/.test(prev)) return false;
    return !/^(-a|--address|-n|--namespace|--fifo-dir)(=.*)?$/.test(a);
  });
  return rest.length === 1 && (rest[0] === "-v" || rest[0] === "--version");
}

/** True when this file is the program (also through npm's bin symlink), not an import. */
function isMain(): boolean {
  // Installed, tsctl is a bundle run by its launcher (scripts/lib/cli-launcher.cjs).
  if ((globalThis as { __tsruncBundled?: boolean }).__tsruncBundled) return true;
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isMain()) {
  // Output piped into `head` and the like: a closed pipe ends us quietly.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(0);
  });
  process.on("unhandledRejection", (err) => process.exit(report(err)));
  run(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => process.exit(report(err)),
  );
}
