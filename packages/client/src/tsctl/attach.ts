// tsctl tasks attach ID: connects our stdio to a running task's fifos (those of `run -d`), as
// ctr's `task attach`: the paths come from Tasks.Get; signals are forwarded (not with a
// terminal, where the window size is kept in step instead); exits with the task's exit status
// once it exits. The task is left for `tsctl tasks rm`.

import { lstatSync } from "node:fs";
import { isAbsolute } from "node:path";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import type { FifoIO } from "../io.js";
import { parseArgs, UsageError } from "./args.js";
import { withClient } from "./connect.js";
import { GLOBAL_OPTIONS, type Globals, withGlobals } from "./globals.js";
import { exitCodeFor, openIO, RawTerminal, relayWindowSize, SignalRelay } from "./session.js";

/** A stdio path from the daemon is only opened if it is an absolute path to a fifo. */
function checkFifo(path: string, what: string): void {
  if (path === "") return;
  if (!isAbsolute(path)) {
    throw new TtrpcError(
      Code.FailedPrecondition,
      `the task's ${what} is ${path}, not a fifo tsctl can attach to`,
    );
  }
  let fifo = false;
  try {
    fifo = lstatSync(path).isFIFO();
  } catch {
    throw new TtrpcError(Code.FailedPrecondition, `the task's ${what} fifo ${path} is gone`);
  }
  if (!fifo) throw new TtrpcError(Code.FailedPrecondition, `the task's ${what} ${path} is not a fifo`);
}

export async function attach(argv: string[], base: Globals): Promise<number> {
  const p = parseArgs(argv, [...GLOBAL_OPTIONS, { name: "exec-id", type: "string" }]);
  const [id, ...extra] = p.positionals;
  if (id === undefined) throw new UsageError("tasks attach needs a container ID");
  if (extra.length > 0) throw new UsageError("tasks attach takes one container ID");
  const execId = typeof p.values["exec-id"] === "string" ? p.values["exec-id"] : "";
  const ref = { containerId: id, execId };
  return withClient(withGlobals(base, p), async (client) => {
    const proc = await client.tasks.get(ref);
    if (proc.stdin === "" && proc.stdout === "" && proc.stderr === "") {
      throw new TtrpcError(
        Code.FailedPrecondition,
        `task ${id} has no stdio to attach to (started with --null-io?)`,
      );
    }
    checkFifo(proc.stdin, "stdin");
    checkFifo(proc.stdout, "stdout");
    checkFifo(proc.stderr, "stderr");
    const exit = client.tasks.wait(ref);
    exit.catch(() => {});
    const relay = new SignalRelay(!proc.terminal, undefined);
    let io: FifoIO | undefined;
    let terminal: RawTerminal | undefined;
    let stopResize = () => {};
    try {
      io = openIO(client, ref, { ...proc }, false);
      io.started(); // the process exists already
      if (proc.terminal) {
        terminal = RawTerminal.enter();
        stopResize = relayWindowSize(client, ref);
      }
      relay.forwardTo((sig) => void client.tasks.kill({ ...ref, signal: sig }).catch(() => {}));
      const status = (await exit).exitStatus;
      await io.drain(2000);
      return exitCodeFor(status);
    } finally {
      stopResize();
      relay.stop();
      io?.close();
      terminal?.restore();
    }
  });
}
