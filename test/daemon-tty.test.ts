// tsctl with a terminal, inside a real pty (node-pty), through our shim and through Debian's Go
// shim: `run -t` and `tasks exec -t` — typed input reaches the shell, its output comes back,
// `stty size` inside is the outer terminal's size and follows a resize, and tsctl exits with
// the shell's status. One daemon for the file; the last test proves nothing is left.
import * as fs from "node:fs";
import * as path from "node:path";
import * as pty from "node-pty";
import t from "tap";
import { goShimSocketPath } from "./helpers/cleanup.js";
import { daemonEnv, TSCTL } from "./helpers/daemon.js";
import { waitFor } from "./helpers/wait.js";

t.setTimeout(180_000);

const d = await daemonEnv(t);
await d.start();
const rootfs = d.rootfs("shared");

const RUNTIMES = [
  { name: "our shim", runtime: "io.containerd.tsrunc.v2" },
  { name: "the Go shim", runtime: "io.containerd.runc.v2" },
];

async function tsctl(args: string[]) {
  const r = await d.spawnTsctl(args);
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** tsctl in a real terminal; its transcript so far, and a way to type. */
function tsctlInPty(args: string[], size: { cols: number; rows: number }) {
  let transcript = "";
  const env = Object.entries({ ...d.env, TERM: "xterm" }).map(([k, v]) => `${k}=${v}`);
  const term = pty.spawn(
    "env",
    ["-i", ...env, process.execPath, TSCTL, "--address", d.address, "-n", d.namespace, ...args],
    { ...size, name: "xterm", env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } },
  );
  term.onData((s) => {
    transcript += s;
  });
  const exited = new Promise<number>((resolve) => term.onExit((e) => resolve(e.exitCode)));
  const expect = (re: RegExp, what: string) =>
    waitFor(() => re.test(transcript), { what, timeoutMs: 15_000 }).catch((err: Error) => {
      throw new Error(`${err.message}; the terminal showed ${JSON.stringify(transcript.slice(-400))}`);
    });
  return {
    term,
    exited,
    text: () => transcript,
    expect,
    /** Waits for the shell's prompt, then lets its line editor settle before we type. */
    ready: async (what: string) => {
      await expect(/\/ # /, what);
      await new Promise((r) => setTimeout(r, 300));
    },
  };
}

for (const { name, runtime } of RUNTIMES) {
  t.test(`run -t through ${name}: typing, output, size, resize, exit status`, async (t) => {
    const id = runtime === "io.containerd.runc.v2" ? "tty-go" : "tty-ours";
    d.root.scope.sockets.add(goShimSocketPath(d.address, d.namespace, id));
    const s = tsctlInPty(["run", "-t", "--rm", "--runtime", runtime, "--rootfs", rootfs, id, "sh"], {
      cols: 100,
      rows: 30,
    });
    t.teardown(() => s.term.kill());
    await s.ready("the shell's prompt");
    s.term.write("echo typed-$((40+2))\r");
    await s.expect(/typed-42/, "the shell's answer");
    s.term.write("tty; stty size\r");
    await s.expect(/\/dev\/pts\/\d+\r\n30 100/, "a terminal of the outer size inside");
    s.term.resize(120, 40);
    // tsctl sees SIGWINCH and sends ResizePty; the shell learns it at its next prompt.
    await waitFor(
      async () => {
        const before = s.text().length;
        s.term.write("stty size\r");
        await waitFor(() => /\d+ \d+\r*\n/.test(s.text().slice(before)), {
          what: "stty's answer",
          timeoutMs: 5000,
        });
        return /40 120/.test(s.text().slice(before));
      },
      { what: "the new size inside", timeoutMs: 10_000, intervalMs: 200 },
    );
    s.term.write("exit 7\r");
    t.equal(await s.exited, 7, "tsctl exits with the shell's status");
    const left = await tsctl(["containers", "ls", "-q"]);
    t.equal(left.stdout, "", "--rm removed the container");
  });

  t.test(`tasks exec -t through ${name}`, async (t) => {
    const id = runtime === "io.containerd.runc.v2" ? "ex-go" : "ex-ours";
    d.root.scope.sockets.add(goShimSocketPath(d.address, d.namespace, id));
    const run = await tsctl(["run", "-d", "--runtime", runtime, "--rootfs", rootfs, id, "sleep", "1000"]);
    t.equal(run.exitCode, 0, run.stderr);
    const s = tsctlInPty(["tasks", "exec", "-t", "--exec-id", "sh1", id, "sh"], { cols: 90, rows: 20 });
    t.teardown(() => s.term.kill());
    await s.ready("the exec's shell prompt");
    s.term.write("echo in-$((6*7)); tty; stty size\r");
    await s.expect(/in-42\r\n\/dev\/pts\/\d+\r\n20 90/, "output, a terminal of the right size");
    s.term.resize(70, 15);
    await waitFor(
      async () => {
        const before = s.text().length;
        s.term.write("stty size\r");
        await waitFor(() => /\d+ \d+\r*\n/.test(s.text().slice(before)), {
          what: "stty's answer",
          timeoutMs: 5000,
        });
        return /15 70/.test(s.text().slice(before));
      },
      { what: "the exec's new size", timeoutMs: 10_000, intervalMs: 200 },
    );
    s.term.write("exit 5\r");
    t.equal(await s.exited, 5, "tsctl exits with the exec's status");
    const ps = JSON.parse((await tsctl(["tasks", "ls", "--format", "json"])).stdout) as Array<{
      id: string;
      status: string;
    }>;
    t.equal(ps.find((x) => x.id === id)?.status, "RUNNING", "the container runs on");
    t.equal((await tsctl(["tasks", "rm", "-f", id])).exitCode, 0);
    t.equal((await tsctl(["containers", "rm", id])).exitCode, 0);
  });
}

t.test("nothing is left", async (t) => {
  t.equal((await tsctl(["tasks", "ls", "--format", "json"])).stdout, "[]\n", "no task");
  t.equal((await tsctl(["containers", "ls", "-q"])).stdout, "", "no container");
  const fifos = path.join(d.env.TSRUNC_FIFO_DIR ?? "", d.namespace);
  t.same(fs.existsSync(fifos) ? fs.readdirSync(fifos) : [], [], "no fifo directory");
  await d.stop();
  await d.finish(t); // no process, bundle or runc state; the sweep forces nothing; no leak
});
