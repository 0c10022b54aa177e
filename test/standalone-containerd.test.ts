// The single-file shim (scripts/install --standalone: Node, the bundle, its code cache and the
// native addon in one executable) under real containerd 1.6 on a "host" without Node: containerd
// runs in a private mount namespace where every node on PATH is hidden and PATH has none
// (helpers/no-node.ts), so the shim's `start`, its server and `delete` can only be the single file.
// One containerd for the whole story: `ctr run --rm`, a detached container across a containerd
// restart (a new namespace, still without node), `ctr task exec -t`, and `delete` after a
// SIGKILLed shim. Then no process is left in any of those namespaces (so they are gone).
import * as fs from "node:fs";
import * as path from "node:path";
import { execa } from "execa";
import * as pty from "node-pty";
import t from "tap";
import { assertNoLeaks, findScopeProcesses } from "./helpers/cleanup.js";
import { argValue, type Containerd } from "./helpers/containerd.js";
import { processesInMountNamespace, ticksNow } from "./helpers/no-node.js";
import { containerdWithOurShim, RUNTIME, SHIM } from "./helpers/our-shim.js";
import { waitFor } from "./helpers/wait.js";

async function taskStatus(cd: Containerd, id: string): Promise<{ pid: number; status: string } | undefined> {
  const r = await cd.ctr(["task", "ls"]);
  for (const line of r.stdout.split("\n").slice(1)) {
    const [tid, pid, status] = line.trim().split(/\s+/);
    if (tid === id) return { pid: Number(pid), status: status ?? "" };
  }
  return undefined;
}

/** The long-lived shim process of container `id` (not a `start` or `delete` run). */
function shimPid(cd: Containerd, id: string): number {
  const p = findScopeProcesses(cd.scope, false).find(
    (p) => argValue(p.argv, "id") === id && !["start", "delete"].includes(p.argv.at(-1) ?? ""),
  );
  if (!p) throw new Error(`no shim process for ${id}`);
  return p.pid;
}

/** `sh -c script` inside containerd's mount namespace (as its shims see the host). */
function inContainerdNs(cd: Containerd, script: string) {
  const pid = cd.pid();
  if (pid === undefined) throw new Error("containerd is not running");
  return execa(
    "nsenter",
    ["-t", String(pid), "-m", "--", "env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "sh", "-c", script],
    {
      reject: false,
    },
  );
}

t.test("the single-file shim runs containers under containerd 1.6 where no node exists", async (t) => {
  const cd = await containerdWithOurShim(t, { layout: "standalone", noNode: true });
  const shim = path.join(cd.root, "opt/bin", SHIM);
  const rootfs = cd.rootfs();

  const probe = await inContainerdNs(cd, `command -v node; node -v; ${shim} --version`);
  t.notMatch(probe.stdout, /^\/.*node$/m, "no node on PATH in containerd's namespace");
  t.match(
    probe.stdout,
    /Runtime: {2}node v\d+\.\d+\.\d+, single executable/,
    "the installed shim is the single file",
  );
  t.ok(fs.statSync(shim).size > 50e6, "one file with Node inside");

  // 1. ctr run --rm: output and exit code.
  const r = await cd.ctr([
    "run",
    "--rm",
    "--runtime",
    RUNTIME,
    "--rootfs",
    rootfs,
    "c1",
    "/bin/sh",
    "-c",
    "echo standalone-ok; exit 3",
  ]);
  t.equal(r.exitCode, 3, "ctr run --rm: the container's exit code", { stderr: r.stderr });
  t.match(r.stdout, /standalone-ok/);

  // 1b. Grouped mode (the same file under another name): two containers, one shim process.
  fs.symlinkSync(SHIM, path.join(cd.root, "opt/bin", "containerd-shim-tsrunc-grouped-v2"));
  const GROUPED = "io.containerd.tsrunc-grouped.v2";
  for (const id of ["g1", "g2"]) {
    const g = await cd.ctr([
      "run",
      "-d",
      "--runtime",
      GROUPED,
      "--rootfs",
      cd.rootfs(`rootfs-${id}`),
      id,
      "/bin/sleep",
      "1000",
    ]);
    t.equal(g.exitCode, 0, `grouped ctr run -d ${id}`, { stderr: g.stderr });
  }
  t.equal(cd.shimSocket("g1"), cd.shimSocket("g2"), "one grouped shim (one socket) serves both");
  for (const id of ["g1", "g2"]) {
    t.equal((await cd.ctr(["task", "rm", "-f", id])).exitCode, 0, `ctr task rm -f ${id}`);
    t.equal((await cd.ctr(["containers", "rm", id])).exitCode, 0, `ctr containers rm ${id}`);
  }

  // 2. A detached container; its shim is the single file (no node in its /proc/PID/exe).
  const d = await cd.ctr([
    "run",
    "-d",
    "--runtime",
    RUNTIME,
    "--rootfs",
    cd.rootfs("rootfs-d1"),
    "d1",
    "/bin/sleep",
    "1000",
  ]);
  t.equal(d.exitCode, 0, "ctr run -d d1", { stderr: d.stderr });
  const before = await taskStatus(cd, "d1");
  t.equal(before?.status, "RUNNING");
  const pid1 = shimPid(cd, "d1");
  t.equal(fs.readlinkSync(`/proc/${pid1}/exe`), shim, "the shim process is the installed single file");
  // The addon was copied into the (namespace's) default cache: root's, 0700 / 0500, by digest.
  const cache = `/proc/${pid1}/root/var/lib/tsrunc/addons`;
  const digests = fs.readdirSync(cache);
  t.equal(digests.length, 1, "one addon digest in the cache");
  const addon = path.join(cache, digests[0] as string, "tsrunc_native.node");
  t.equal(fs.statSync(path.dirname(addon)).mode & 0o777, 0o700);
  t.equal(fs.statSync(addon).mode & 0o777, 0o500);
  t.ok(
    fs
      .readFileSync(`/proc/${pid1}/maps`, "utf8")
      .includes(`/var/lib/tsrunc/addons/${digests[0]}/tsrunc_native.node`),
    "the shim loaded the cached copy",
  );

  // 3. ctr task exec -t in a real terminal.
  let transcript = "";
  const term = pty.spawn(
    "ctr",
    [
      "--address",
      cd.grpcAddress,
      "--namespace",
      cd.namespace,
      "task",
      "exec",
      "-t",
      "--exec-id",
      "tty1",
      "d1",
      "/bin/sh",
    ],
    { cols: 90, rows: 25, env: { PATH: process.env.PATH ?? "/usr/bin:/bin", TERM: "xterm" } },
  );
  t.teardown(() => term.kill());
  term.onData((s) => {
    transcript += s;
  });
  const termExit = new Promise<number>((res) => term.onExit((e) => res(e.exitCode)));
  await waitFor(() => /\/ # /.test(transcript), { what: "the exec's shell prompt", timeoutMs: 15_000 });
  await new Promise((res) => setTimeout(res, 300));
  term.write("echo tty-$((6*7)); stty size\r");
  await waitFor(() => /tty-42/.test(transcript) && /25 90/.test(transcript), {
    what: "the exec's answer",
    timeoutMs: 15_000,
  }).catch((e: Error) => {
    throw new Error(`${e.message}: ${JSON.stringify(transcript.slice(-300))}`);
  });
  term.write("exit 4\r");
  t.equal(await termExit, 4, "ctr task exec -t returns the shell's exit code");

  // 4. containerd SIGKILLed and started again (in a new namespace, still without node).
  await cd.kill9();
  await cd.restart();
  t.equal(cd.mountNamespaces.length, 2);
  const after = await taskStatus(cd, "d1");
  t.same(after, before, "d1 still RUNNING with the same pid after the restart");
  const e = await cd.ctr(["task", "exec", "--exec-id", "e2", "d1", "/bin/echo", "back"]);
  t.equal(e.exitCode, 0, "exec after the restart", { stderr: e.stderr });
  t.match(e.stdout, /back/);
  const k = await cd.ctr(["task", "kill", "-s", "KILL", "d1"]);
  t.equal(k.exitCode, 0, "", { stderr: k.stderr });
  await waitFor(async () => (await taskStatus(cd, "d1"))?.status === "STOPPED", {
    what: "d1 to stop",
    timeoutMs: 10_000,
  });
  t.equal((await cd.ctr(["task", "rm", "d1"])).exitCode, 0, "ctr task rm d1");
  t.equal((await cd.ctr(["containers", "rm", "d1"])).exitCode, 0, "ctr containers rm d1");

  // 5. A SIGKILLed shim: containerd runs the single file's `delete`.
  const k1 = await cd.ctr([
    "run",
    "-d",
    "--runtime",
    RUNTIME,
    "--rootfs",
    cd.rootfs("rootfs-k1"),
    "k1",
    "/bin/sleep",
    "1000",
  ]);
  t.equal(k1.exitCode, 0, "ctr run -d k1", { stderr: k1.stderr });
  process.kill(shimPid(cd, "k1"), "SIGKILL");
  await waitFor(async () => (await taskStatus(cd, "k1")) === undefined, {
    what: "containerd to clean up k1's dead shim",
    timeoutMs: 20_000,
  });
  t.match(cd.logTail(400), /cleaning up dead shim/, "containerd cleaned up after the dead shim");
  t.equal((await cd.ctr(["containers", "rm", "k1"])).exitCode, 0, "ctr containers rm k1");
  const shimsLeft = () =>
    findScopeProcesses(cd.scope, false)
      .map((p) => p.argv.join(" "))
      .filter((a) => a.includes(SHIM));
  // The delete run answers containerd first and exits just after.
  await waitFor(() => shimsLeft().length === 0, { what: "no shim process", timeoutMs: 5_000 }).catch(
    () => {},
  );
  t.same(shimsLeft(), [], "no shim left");

  const mark = ticksNow();
  t.same(await cd.stop(), [], "containerd stopped, nothing forced");
  // A process that was killed may still be on its way out: give it a moment, then name it.
  const left = () =>
    cd.mountNamespaces.flatMap((ns) =>
      processesInMountNamespace(ns, mark).map((pid) => {
        let cmd = "?";
        try {
          cmd = fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
        } catch {}
        return `${ns} ${pid}: ${cmd}`;
      }),
    );
  await waitFor(() => left().length === 0, { what: "the namespaces to empty", timeoutMs: 5000 }).catch(
    () => {},
  );
  t.same(left(), [], "no process left in containerd's namespaces (so they are gone)");
  assertNoLeaks(t, cd.scope);
});
