// Crash consistency: a child process writes to the store in a loop (crash-writer.fixture.ts)
// and is SIGKILLed at a random moment, 20 times over the same file. After each kill the store
// must open, pass integrity_check, hold every transaction the child reported committed, and
// hold each transaction whole or not at all: the file's content must be exactly what the
// fixture's steps 1..P produce, P being its progress label.

import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { MetadataStore } from "./metadata-store.js";
import type { ContainerRecord, TaskRecord } from "./records.js";
import { tempDir } from "./test-support.js";

const writer = join(dirname(fileURLToPath(import.meta.url)), "crash-writer.fixture.js");
const ns = "crash";
const kills = 20;

/** mulberry32: a seeded PRNG, so that a failing run can be replayed with its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
}

interface Run {
  ready: boolean;
  /** ms from spawn to "ready", when it came. */
  readyAfter?: number;
  acked: number;
  signal: NodeJS.Signals | null;
  code: number | null;
  stderr: string;
}

/**
 * Starts the writer and SIGKILLs it `delayMs` after it started (`afterReady` false) or after it
 * said "ready"; reports what it had said by then.
 */
function runAndKill(path: string, delayMs: number, afterReady: boolean): Promise<Run> {
  return new Promise((resolve, reject) => {
    const spawned = Date.now();
    let readyAfter: number | undefined;
    const child = spawn(process.execPath, [writer, path], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let stderr = "";
    let timer: NodeJS.Timeout | undefined;
    const arm = () => {
      timer ??= setTimeout(() => child.kill("SIGKILL"), delayMs);
    };
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      if (readyAfter === undefined && out.startsWith("ready\n")) readyAfter = Date.now() - spawned;
      if (afterReady && readyAfter !== undefined) arm();
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    if (!afterReady) arm();
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      // Only whole lines count: a line cut by the kill was not a report.
      const lines = out.split("\n").slice(0, -1);
      const last = lines.filter((l) => l.startsWith("committed ")).at(-1);
      resolve({
        ready: lines.includes("ready"),
        ...(readyAfter !== undefined ? { readyAfter } : {}),
        acked: last ? Number(last.slice("committed ".length)) : -1,
        signal,
        code,
        stderr,
      });
    });
  });
}

/** Checks the store's whole content against the fixture's steps; returns P. */
function verify(
  t: { same(found: unknown, wanted: unknown, message: string): unknown },
  store: MetadataStore,
): number {
  const progress = store.findContainer(ns, "progress");
  const p = progress ? Number(progress.labels.seq) : 0;
  const containers = new Map<string, ContainerRecord>(
    store.listContainers(ns).flatMap((c) => (c.id === "progress" ? [] : [[c.id, c]])),
  );
  const tasks = new Map<string, TaskRecord>(store.listTasks(ns).map((r) => [r.id, r]));
  const problems: string[] = [];
  const expected = new Set<string>();
  for (let n = 1; n <= p; n++) {
    const deleted = (n + 4) % 5 === 0 && n + 4 <= p;
    if (deleted) continue;
    const id = `c${n}`;
    expected.add(id);
    const running = (n + 1) % 3 === 0 && n + 1 <= p;
    const c = containers.get(id);
    const task = tasks.get(id);
    if (!c || !task) {
      problems.push(`${id}: container ${c ? "present" : "absent"}, task ${task ? "present" : "absent"}`);
      continue;
    }
    const phase = running ? "running" : "creating";
    if (c.labels.seq !== String(n) || c.labels.phase !== phase || Object.keys(c.labels).length !== 4)
      problems.push(`${id}: labels ${JSON.stringify({ seq: c.labels.seq, phase: c.labels.phase })}`);
    if (Object.keys(c.extensions).length !== 3 || c.spec?.value.length !== 64)
      problems.push(`${id}: extensions or spec incomplete`);
    if (task.phase !== phase || task.pid !== (running ? n + 100_000 : n) || task.bundle !== `/run/b/${id}`)
      problems.push(`${id}: task ${task.phase} pid ${task.pid}`);
    if ((task.network as { seq?: number } | undefined)?.seq !== n) problems.push(`${id}: task network`);
  }
  for (const id of containers.keys())
    if (!expected.has(id)) problems.push(`${id}: should not exist (P=${p})`);
  for (const id of tasks.keys())
    if (!expected.has(id)) problems.push(`task ${id}: should not exist (P=${p})`);
  t.same(problems.slice(0, 10), [], `the content is exactly steps 1..${p}`);
  return p;
}

t.test("SIGKILL at random moments: the file stays whole, transactions stay atomic", async (t) => {
  const seed = Number(process.env.CRASH_SEED ?? Date.now() % 2 ** 31);
  t.comment(`seed ${seed} (CRASH_SEED=${seed} replays this run)`);
  const random = prng(seed);
  const path = join(tempDir(t), "meta", "meta.db");
  let killedWriting = 0;
  let killedStarting = 0;
  let previous = 0;
  const started = Date.now();
  // How long the writer takes to start (node, the addon, the store's open), on this machine now.
  let startup = (await runAndKill(join(tempDir(t), "warm-up.db"), 0, true)).readyAfter ?? 100;
  for (let i = 0; i < kills; i++) {
    // Every fourth kill is blind, around the time the store opens (the first one may land
    // mid-migration); the others land 0–120 ms into the writing.
    const blind = i % 4 === 0;
    const delay = Math.floor(blind ? startup * (0.8 + 0.4 * random()) : 120 * random());
    const run = await runAndKill(path, delay, !blind);
    if (run.readyAfter !== undefined) startup = run.readyAfter;
    if (run.signal !== "SIGKILL") {
      t.fail(`writer ended by itself (code ${run.code}): ${run.stderr}`);
      break;
    }
    if (run.acked >= 0) killedWriting++;
    if (!run.ready) killedStarting++;

    const store = MetadataStore.open(path);
    try {
      const when = blind ? `${delay} ms after spawn` : `${delay} ms after ready`;
      t.same(store.integrityProblems(), [], `kill ${i + 1}, ${when}: integrity_check ok`);
      const p = verify(t, store);
      const acked = run.acked >= 0 ? run.acked : previous;
      t.ok(
        p === acked || p === acked + 1,
        `every acknowledged commit is there (acked ${acked}, stored ${p})`,
      );
      previous = p;
    } finally {
      store.close();
    }
  }
  t.comment(
    `${kills} kills: ${killedStarting} before the store was open, ${killedWriting} after commits; ` +
      `${previous} transactions committed in ${Date.now() - started} ms`,
  );
  t.ok(killedWriting >= kills / 2, "most kills hit the writer while it was writing");
  t.ok(previous > 50, "the writer got far enough to matter");
});
