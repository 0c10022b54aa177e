// run -t in a real pseudo-terminal (node-pty): the window size goes out after Start and on
// SIGWINCH, and the terminal leaves raw mode on every way out (normal exit and a signal).

import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pty from "node-pty";
import t from "tap";
import { FakeDaemon } from "../test-support.js";

const TSCTL = fileURLToPath(new URL("./main.js", import.meta.url));

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The pid of the tsctl we started (its argv holds our unique fifo directory). */
function tsctlPid(marker: string): number | undefined {
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, "utf8").split("\0");
      if (argv.includes(TSCTL) && argv.includes(marker)) return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

async function start(t: { teardown(fn: () => unknown): void }, id: string) {
  const daemon = await FakeDaemon.start(t);
  const dir = mkdtempSync(join(tmpdir(), "tsctl-tty-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const rootfs = join(dir, "rootfs");
  mkdirSync(rootfs);
  const fifoDir = join(dir, "fifo");
  const script = `'${process.execPath}' '${TSCTL}' --fifo-dir '${fifoDir}' run --rm -t --rootfs '${rootfs}' ${id} sleep; echo "EXIT=$?"; stty -a`;
  const term = pty.spawn("/bin/sh", ["-c", script], {
    cols: 100,
    rows: 30,
    env: { ...process.env, TSRUNC_ADDRESS: daemon.path, TSRUNC_NAMESPACE: "default" } as Record<
      string,
      string
    >,
  });
  let output = "";
  term.onData((d) => {
    output += d;
  });
  const exited = new Promise<number>((res) => term.onExit((e) => res(e.exitCode)));
  t.teardown(() => term.kill());
  return { daemon, term, fifoDir, exited, output: () => output };
}

const sizes = (d: FakeDaemon) =>
  d.callsOf("ResizePty").map((c) => {
    const r = c.request as { width: number; height: number };
    return [r.width, r.height];
  });

t.test("run -t: window size after Start and on SIGWINCH; the terminal is restored at exit", async (t) => {
  const { daemon, term, exited, output } = await start(t, "tty1");
  await until(() => sizes(daemon).length > 0, "the first ResizePty");
  t.same(sizes(daemon)[0], [100, 30]);
  t.ok(
    daemon.calls.findIndex((c) => c.method === "Start") <
      daemon.calls.findIndex((c) => c.method === "ResizePty"),
    "after Start",
  );
  term.resize(120, 40);
  await until(() => sizes(daemon).some(([w, h]) => w === 120 && h === 40), "ResizePty after SIGWINCH");
  term.write("Zq");
  await new Promise((r) => setTimeout(r, 200));
  t.notMatch(output(), /Zq/, "raw mode: what is typed is not echoed by the terminal");
  const p = daemon.processes.get("default/tty1/");
  t.ok(p, "the task runs");
  (p as unknown as { exit(s: number): void }).exit(7);
  t.equal(await exited, 0);
  t.match(output(), /EXIT=7/);
  t.match(output(), /[^-]icanon/, "canonical mode is back");
  t.match(output(), /[^-]echo /, "echo is back");
  t.same(
    daemon.callsOf("Kill").map((c) => c.request),
    [],
    "nothing forwarded with a terminal",
  );
});

t.test("run -t: a signal to tsctl restores the terminal and exits 128+N", async (t) => {
  const { daemon, fifoDir, exited, output } = await start(t, "tty2");
  await until(() => sizes(daemon).length > 0, "ResizePty");
  const pid = tsctlPid(fifoDir);
  t.ok(pid, "found our tsctl");
  process.kill(pid!, "SIGTERM");
  t.equal(await exited, 0);
  t.match(output(), /EXIT=143/);
  t.match(output(), /[^-]icanon/);
  t.same(daemon.callsOf("Kill"), [], "not forwarded: with -t tsctl only restores and leaves");
});
