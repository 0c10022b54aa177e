// Two tsctl "sessions" at once against one tsruncd, each a group of concurrent tsctl processes,
// working on 20 containers (10 each) with every step interleaved: run --rm, run -d, exec (plain
// and with stdin), kill, wait, tasks rm, containers rm. Every command must succeed, every
// output must be its own container's (hostname and payload carry the id), and nothing may be
// left. Session b runs half of its containers through Debian's Go shim. The wall time is printed.
import * as fs from "node:fs";
import * as path from "node:path";
import t from "tap";
import { goShimSocketPath } from "./helpers/cleanup.js";
import { daemonEnv } from "./helpers/daemon.js";

t.setTimeout(240_000);

const PER_SESSION = 10;
const OURS = "io.containerd.tsrunc.v2";
const GO = "io.containerd.runc.v2";

t.test("two sessions, 20 containers, every step interleaved", async (t) => {
  const d = await daemonEnv(t);
  await d.start();
  const rootfs = d.rootfs("shared");
  let commands = 0;
  const slowest: Array<{ ms: number; what: string }> = [];

  const tsctl = async (args: string[], input?: string) => {
    commands++;
    const started = performance.now();
    const r = await d.spawnTsctl(args, { timeoutMs: 90_000, ...(input !== undefined ? { input } : {}) });
    slowest.push({ ms: performance.now() - started, what: args.slice(0, 6).join(" ") });
    return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
  };

  /** One container's life, through `runtime`; every check names the container. */
  const life = async (id: string, k: number, runtime: string) => {
    for (const c of [id, `${id}-once`]) d.root.scope.sockets.add(goShimSocketPath(d.address, d.namespace, c));
    const once = await tsctl([
      "run",
      "--rm",
      "--runtime",
      runtime,
      "--rootfs",
      rootfs,
      `${id}-once`,
      "sh",
      "-c",
      `echo out-${id}; echo err-${id} >&2; exit ${k % 50}`,
    ]);
    t.equal(once.stdout, `out-${id}\n`, `${id}: run --rm stdout`);
    t.equal(once.stderr, `err-${id}\n`, `${id}: run --rm stderr`);
    t.equal(once.exitCode, k % 50, `${id}: run --rm exit code`);

    const run = await tsctl([
      "run",
      "-d",
      "--runtime",
      runtime,
      "--hostname",
      id,
      "--env",
      `ME=${id}`,
      "--rootfs",
      rootfs,
      id,
      "sh",
      "-c",
      "while :; do sleep 0.1; done",
    ]);
    t.equal(run.exitCode, 0, `${id}: run -d ${run.stderr}`);

    const [plain, piped] = await Promise.all([
      tsctl(["tasks", "exec", "--exec-id", "x1", id, "sh", "-c", 'echo "$(hostname) $ME"; exit 3']),
      tsctl(["tasks", "exec", "-i", "--exec-id", "x2", id, "cat"], `payload of ${id}\n`.repeat(50)),
    ]);
    t.equal(plain.stdout, `${id} ${id}\n`, `${id}: exec ran in its own container`);
    t.equal(plain.exitCode, 3, `${id}: exec exit code ${plain.stderr}`);
    t.equal(piped.stdout, `payload of ${id}\n`.repeat(50), `${id}: exec -i echoed its own input`);
    t.equal(piped.exitCode, 0, `${id}: exec -i ${piped.stderr}`);

    const kill = await tsctl(["tasks", "kill", "-s", "KILL", id]);
    t.equal(kill.exitCode, 0, `${id}: kill ${kill.stderr}`);
    const wait = await tsctl(["tasks", "wait", id]);
    t.equal(wait.stdout, "137\n", `${id}: wait ${wait.stderr}`);
    const rmTask = await tsctl(["tasks", "rm", id]);
    t.equal(rmTask.exitCode, 0, `${id}: tasks rm ${rmTask.stderr}`);
    const rmC = await tsctl(["containers", "rm", id]);
    t.equal(rmC.exitCode, 0, `${id}: containers rm ${rmC.stderr}`);
  };

  /**
   * A session: its containers' lives side by side, plus lists asked while they go on. Session
   * b runs every other container through the Go shim.
   */
  const session = async (name: string) => {
    const ids = Array.from({ length: PER_SESSION }, (_, i) => `${name}${i}`);
    const lists = (async () => {
      for (let i = 0; i < 5; i++) {
        const ls = await tsctl(["tasks", "ls", "--format", "json"]);
        t.equal(ls.exitCode, 0, `${name}: tasks ls while busy ${ls.stderr}`);
        t.ok(Array.isArray(JSON.parse(ls.stdout)), `${name}: tasks ls is a JSON array`);
        const cls = await tsctl(["containers", "ls", "--format", "json"]);
        t.equal(cls.exitCode, 0, `${name}: containers ls while busy ${cls.stderr}`);
      }
    })();
    await Promise.all([...ids.map((id, k) => life(id, k, name === "b" && k % 2 === 1 ? GO : OURS)), lists]);
  };

  const t0 = performance.now();
  await Promise.all([session("a"), session("b")]);
  const ms = performance.now() - t0;
  t.comment(
    `2 sessions × ${PER_SESSION} containers, ${commands} tsctl commands: ${Math.round(ms)} ms wall time`,
  );
  slowest.sort((a, b) => b.ms - a.ms);
  t.comment(
    `slowest: ${slowest
      .slice(0, 5)
      .map((x) => `${Math.round(x.ms)} ms ${x.what}`)
      .join("; ")}`,
  );

  t.equal((await tsctl(["tasks", "ls", "--format", "json"])).stdout, "[]\n", "no task left");
  t.equal((await tsctl(["containers", "ls", "-q"])).stdout, "", "no container left");
  const fifos = path.join(d.env.TSRUNC_FIFO_DIR ?? "", d.namespace);
  t.same(fs.existsSync(fifos) ? fs.readdirSync(fifos) : [], [], "no fifo directory left");
  const bundles = path.join(d.root.path, "state", d.namespace);
  t.same(fs.existsSync(bundles) ? fs.readdirSync(bundles) : [], [], "no bundle left");
  await d.finish(t); // no process, bundle or runc state; the sweep forces nothing; no leak
});
