// The plumbing scripts/bench-shim, bench-daemon and bench-images share: their integer and --only
// options, progress notes on stderr, a tap-like `t` for the test harness (containerd, temp roots)
// whose teardowns run at the end — the harness's exit hook sweeps on Ctrl-C or a crash —, the
// environment lines of the report, and the end of a run: the cleanup, the exit code (non-zero
// only when something failed, not when a goal is missed) and the report or its JSON on stdout.

import { availableParallelism, loadavg } from "node:os";
import { execa } from "execa";

export const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** `--name` of parseArgs' values as an integer >= min. */
export function intOption<V extends object>(values: V, name: keyof V & string, min: number): number {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}`);
  return n;
}

/** --only's comma-separated sections, each one of `known`. */
export function sectionsOption(only: string, known: readonly string[]): Set<string> {
  const sections = new Set(only.split(",").filter(Boolean));
  for (const s of sections)
    if (!known.includes(s)) throw new Error(`--only: unknown ${s} (${known.join(", ")})`);
  return sections;
}

/** The test harness's TestLike (test/helpers/cleanup/tap-cleanup.ts), as the benches fill it. */
export interface HarnessTest {
  ok(value: unknown, message: string, extra: unknown): boolean;
  teardown(fn: () => unknown): void;
  passing(): boolean;
  comment(...args: unknown[]): void;
}

/** tsruncd as the benches run it (scripts/src/bench-daemon/daemon.ts). */
interface StoppableDaemon {
  stop(): Promise<void>;
  root: { cleanup(): string[] };
}

/** A harness containerd: stop() is idempotent and returns its cleanup problems. */
interface StoppableContainerd {
  stop(): Promise<string[]>;
}

export class BenchHarness<C extends StoppableContainerd = StoppableContainerd> {
  /** Progress on stderr (stdout carries the report or the JSON). */
  readonly note: (msg: string) => void;
  /** Set when the run threw: passing() false makes containerd's teardown print its log tail. */
  failed = false;
  /** The tsruncd to stop first at the end, if any. */
  daemon: StoppableDaemon | undefined;
  /** The containerds to stop at the end (after tsruncd, before the teardowns). */
  readonly containerds: C[] = [];
  readonly t: HarnessTest;
  readonly #teardowns: Array<() => unknown> = [];

  constructor(name: string) {
    this.note = (msg) => process.stderr.write(`${name}: ${msg}\n`);
    this.t = {
      teardown: (fn) => this.#teardowns.push(fn),
      passing: () => !this.failed,
      ok: () => true,
      comment: () => {},
    };
  }

  /**
   * Stops tsruncd (SIGTERM: it leaves its containers to the sweep), the containerds, sweeps
   * tsruncd's temp root, then runs the teardowns (LIFO); resolves to the problems found.
   */
  async cleanup(): Promise<string[]> {
    const errors: string[] = [];
    await this.daemon?.stop().catch((e) => errors.push(`stopping tsruncd: ${message(e)}`));
    for (const cd of this.containerds.splice(0)) errors.push(...(await cd.stop()));
    if (this.daemon) errors.push(...this.daemon.root.cleanup());
    for (let fn = this.#teardowns.pop(); fn; fn = this.#teardowns.pop()) {
      try {
        const r = await fn();
        if (Array.isArray(r)) errors.push(...r.map(String));
      } catch (e) {
        errors.push(String(e));
      }
    }
    return errors;
  }

  /**
   * Runs the bench's body, `ended` (whether it threw or not), then the cleanup. The code is 1 when
   * the body threw, left `failures` (failed runs it went on after) or the cleanup found problems.
   * `completed`: the body returned.
   */
  async run(
    body: () => Promise<void>,
    failures: readonly string[],
    ended: () => void = () => {},
  ): Promise<{ code: number; completed: boolean }> {
    let code = 0;
    let completed = false;
    try {
      await body();
      completed = true;
      if (failures.length) {
        code = 1;
        this.note(`FAILED: ${failures.length} run(s) failed (see above)`);
      }
    } catch (e) {
      this.failed = true;
      code = 1;
      this.note(`FAILED: ${message(e)}`);
    }
    ended();
    this.note("cleaning up");
    const cleanupErrors = await this.cleanup();
    if (cleanupErrors.length) {
      code = 1;
      this.note(`cleanup problems: ${cleanupErrors.join("; ")}`);
    }
    return { code, completed };
  }
}

async function version(cmd: string, args: string[], re: RegExp): Promise<string> {
  const r = await execa(cmd, args, { reject: false });
  return re.exec(String(r.stdout))?.[1] ?? "?";
}

/** The load averages (1, 5, 15 min) as the report prints them. */
export const loadNow = (): string[] => loadavg().map((v) => v.toFixed(2));

/** The environment every bench reports: node, containerd's and runc's versions, cpus, the load. */
export async function benchEnv(): Promise<{
  node: string;
  containerd: string;
  runc: string;
  cpus: number;
  loadBefore: string[];
}> {
  return {
    node: process.version,
    containerd: `containerd ${await version("containerd", ["--version"], /containerd \S+ (\S+)/)}`,
    runc: await version("runc", ["--version"], /runc version (\S+)/),
    cpus: availableParallelism(),
    loadBefore: loadNow(),
  };
}

/** The result on stdout: its JSON with --json, else the report. */
export function printResult<R>(result: R, json: boolean, report: (r: R) => string): void {
  process.stdout.write(json ? `${JSON.stringify(result, null, 2)}\n` : `${report(result)}\n`);
}
