// tsctl tasks exec [-t] [-i] [-d] [--cwd DIR] [--user U] [--env K=V] --exec-id X ID CMD [ARG...]
//
// As ctr's `tasks exec`: the process is the container's own (spec.process) with new args,
// terminal, and optionally cwd/user/env. Flow: Tasks.Exec → Wait → Start → signals / window
// size → exit → Tasks.DeleteProcess. Exits with the process's exit status. -d returns after
// Start and leaves the fifos (like run -d).

import { containerSpec, type TsruncClient } from "../client.js";
import { checkIdentifier } from "../identifiers.js";
import { removeFifoSet } from "../io.js";
import { execProcess } from "../spec.js";
import { checkEnv } from "../spec-options.js";
import { bool, list, type OptionSpec, parseArgs, str, UsageError } from "./args.js";
import { withClient } from "./connect.js";
import { GLOBAL_OPTIONS, type Globals, withGlobals } from "./globals.js";
import {
  exitCodeFor,
  relayWindowSize,
  SignalRelay,
  type StdioSetup,
  setupStdio,
  stdioMode,
  waitThenStart,
} from "./session.js";

export const EXEC_OPTIONS: readonly OptionSpec[] = [
  ...GLOBAL_OPTIONS,
  { name: "exec-id", type: "string" },
  { name: "tty", short: "t", type: "boolean" },
  { name: "interactive", short: "i", type: "boolean" },
  { name: "detach", short: "d", type: "boolean" },
  { name: "cwd", type: "string" },
  { name: "user", short: "u", type: "string" },
  { name: "env", short: "e", type: "string", multiple: true },
  { name: "null-io", type: "boolean" },
  { name: "log-uri", type: "string" },
];

export async function exec(argv: string[], base: Globals): Promise<number> {
  const p = parseArgs(argv, EXEC_OPTIONS, { stopAfter: 1 });
  const [id, ...args] = p.positionals;
  const execId = str(p, "exec-id");
  if (execId === undefined || execId === "") throw new UsageError("tasks exec needs --exec-id");
  if (id === undefined) throw new UsageError("tasks exec needs a container ID");
  if (args.length === 0) throw new UsageError("tasks exec needs a command after the ID");
  checkIdentifier(id, "container id");
  checkIdentifier(execId, "exec id");
  const tty = bool(p, "tty");
  const stdin = bool(p, "interactive");
  const detach = bool(p, "detach");
  const mode = stdioMode({ nullIO: bool(p, "null-io"), logUri: str(p, "log-uri"), tty, stdin });
  const env = checkEnv(list(p, "env"));
  const g = withGlobals(base, p);
  return withClient(g, async (client) => {
    const spec = containerSpec(await client.containers.get(id));
    if (spec === undefined) throw new UsageError(`container ${id} has no runtime spec to exec from`);
    const processSpec = execProcess(spec, {
      args,
      tty,
      env,
      ...(str(p, "cwd") !== undefined ? { cwd: str(p, "cwd")! } : {}),
      ...(str(p, "user") !== undefined ? { user: str(p, "user")! } : {}),
    });
    return runExec(client, g, { containerId: id, execId }, { mode, tty, stdin, detach, spec: processSpec });
  });
}

async function runExec(
  client: TsruncClient,
  g: Globals,
  ref: { containerId: string; execId: string },
  o: {
    mode: ReturnType<typeof stdioMode>;
    tty: boolean;
    stdin: boolean;
    detach: boolean;
    spec: ReturnType<typeof execProcess>;
  },
): Promise<number> {
  const relay = new SignalRelay(!o.tty, undefined);
  let stdio: StdioSetup | undefined;
  let added = false;
  let started = false;
  try {
    stdio = await setupStdio({ client, g, ref, mode: o.mode, tty: o.tty, stdin: o.stdin, detach: o.detach });
    await client.tasks.exec({ ...ref, ...stdio.paths, terminal: o.tty, spec: o.spec });
    added = true;
    const proc = await waitThenStart(client, ref, o.detach);
    started = true;
    stdio.io?.started();
    stdio.release?.();
    if (o.detach) return 0;
    const stopResize = o.tty ? relayWindowSize(client, ref) : () => {};
    relay.forwardTo((sig) => void client.tasks.kill({ ...ref, signal: sig }).catch(() => {}));
    let status: number;
    try {
      status = (await proc.exit).exitStatus;
    } finally {
      stopResize();
    }
    await stdio.io?.drain(2000);
    stdio.terminal?.restore();
    await client.tasks.deleteProcess(ref);
    await removeFifoSet(stdio.fifos);
    return exitCodeFor(status);
  } catch (err) {
    stdio?.terminal?.restore();
    stdio?.io?.close();
    stdio?.release?.();
    if (added && !started) await client.tasks.deleteProcess(ref).catch(() => {});
    if (!started || !o.detach) await removeFifoSet(stdio?.fifos).catch(() => {});
    throw err;
  } finally {
    relay.stop();
  }
}
