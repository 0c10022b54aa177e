import * as path from "node:path";
import { fileURLToPath } from "node:url";
import * as pty from "node-pty";
import t from "tap";
import { assertNoLeaks } from "./helpers/cleanup.js";
import type { Containerd } from "./helpers/containerd.js";
import { containerdWithOurShim } from "./helpers/our-shim.js";
import { waitFor } from "./helpers/wait.js";

const _repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** ctr in a real terminal; returns its transcript so far and a way to type. */
function ctrInPty(cd: Containerd, args: string[], size: { cols: number; rows: number }) {
  let transcript = "";
  const term = pty.spawn("ctr", ["--address", cd.grpcAddress, "--namespace", cd.namespace, ...args], {
    ...size,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", TERM: "xterm" },
  });
  term.onData((d) => {
    transcript += d;
  });
  const exited = new Promise<number>((resolve) => term.onExit((e) => resolve(e.exitCode)));
  return {
    term,
    exited,
    text: () => transcript,
    /** Waits for the shell's prompt, then lets its line editor settle before we type. */
    ready: async (what: string) => {
      await waitFor(() => /\/ # /.test(transcript), { what, timeoutMs: 15_000 });
      await new Promise((r) => setTimeout(r, 300));
    },
    expect: (re: RegExp, what: string) =>
      waitFor(() => re.test(transcript), { what, timeoutMs: 15_000 }).catch((err: Error) => {
        throw new Error(`${err.message}; the terminal showed ${JSON.stringify(transcript.slice(-300))}`);
      }),
  };
}

t.test("ctr run -t: typed input, output, resize, exit status", async (t) => {
  const cd = await containerdWithOurShim(t);
  const rootfs = cd.rootfs();
  const s = ctrInPty(
    cd,
    ["run", "-t", "--rm", "--runtime", "io.containerd.tsrunc.v2", "--rootfs", rootfs, "tty1", "/bin/sh"],
    {
      cols: 100,
      rows: 30,
    },
  );
  t.teardown(() => s.term.kill());
  // Type only once the shell prompts: before that ctr may not have its terminal in raw mode yet.
  await s.ready("the shell's prompt");
  s.term.write("echo typed-$((40+2))\r");
  await s.expect(/typed-42/, "the shell's answer");
  s.term.write("stty size\r");
  await s.expect(/30 100/, "the initial size inside");
  s.term.resize(120, 40);
  await new Promise((r) => setTimeout(r, 300)); // ctr forwards SIGWINCH as ResizePty
  s.term.write("stty size\r");
  await s.expect(/40 120/, "the new size inside");
  s.term.write("exit 7\r");
  t.equal(await s.exited, 7, "ctr exits with the shell's status");
  await cd.stop();
  assertNoLeaks(t, cd.scope);
});

t.test("ctr task exec, with and without -t, into a detached container", async (t) => {
  const cd = await containerdWithOurShim(t);
  const rootfs = cd.rootfs();
  const run = await cd.ctr([
    "run",
    "-d",
    "--runtime",
    "io.containerd.tsrunc.v2",
    "--rootfs",
    rootfs,
    "ex1",
    "/bin/sleep",
    "1000",
  ]);
  t.equal(run.exitCode, 0, run.stderr);
  const plain = await cd.ctr([
    "task",
    "exec",
    "--exec-id",
    "plain",
    "ex1",
    "/bin/sh",
    "-c",
    "echo via-exec; exit 6",
  ]);
  t.equal(plain.stdout.trim(), "via-exec");
  t.equal(plain.exitCode, 6, "ctr task exec exits with the exec's status");
  const s = ctrInPty(cd, ["task", "exec", "-t", "--exec-id", "tty", "ex1", "/bin/sh"], {
    cols: 90,
    rows: 20,
  });
  t.teardown(() => s.term.kill());
  await s.ready("the exec's shell prompt");
  s.term.write("tty; stty size\r");
  await s.expect(/\/dev\/pts\/\d+[\s\S]*20 90/, "a terminal of the right size");
  s.term.write("exit\r");
  t.equal(await s.exited, 0);
  const ps = await cd.ctr(["task", "ps", "ex1"]);
  t.equal(ps.exitCode, 0, ps.stderr);
  t.equal((await cd.ctr(["task", "kill", "-s", "KILL", "ex1"])).exitCode, 0);
  await waitFor(async () => /ex1\s+\d+\s+STOPPED/.test((await cd.ctr(["task", "ls"])).stdout), {
    what: "ex1 stopped",
  });
  const execIntoStopped = await cd.ctr(["task", "exec", "--exec-id", "late", "ex1", "/bin/true"]);
  t.not(execIntoStopped.exitCode, 0, "exec into a stopped container fails");
  t.match(execIntoStopped.stderr, /precondition|stopped|running/i);
  t.equal((await cd.ctr(["task", "rm", "ex1"])).exitCode, 0);
  t.equal((await cd.ctr(["container", "rm", "ex1"])).exitCode, 0);
  await cd.stop();
  assertNoLeaks(t, cd.scope);
});
