// A private tsruncd for the bench, as a user gets it: `scripts/install PREFIX` into the bench's
// temp root (a copy: a rebuild by someone else mid-run changes nothing here), started as
// `PREFIX/bin/tsruncd --root R/root --state R/state --address R/state/tsruncd.sock` with a clean
// environment (PATH finds our shim in PREFIX/bin first, TSRUNC_FIFO_DIR=R/fifo), tsctl likewise.
// Everything lives in a harness temp root (tmpfs on /tmp/tsr-XXXXXX) whose sweep kills what is
// left (tsruncd, shims, containers), deletes runc state and cgroups and removes the root, also on
// Ctrl-C (the harness's exit hook).

import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { execa, type ResultPromise } from "execa";
import type { TestLike } from "../../../test/helpers/containerd.js";
import { makeBusyboxRootfs } from "../../../test/helpers/rootfs.js";
import { type TempRoot, tempRoot } from "../../../test/helpers/temp-root.js";
import { repo } from "../bench-shim/paths.js";
import { now } from "./clock.js";

/** One JSON line of tsruncd's log, with the time the bench read it. */
export interface LogLine {
  readAt: number;
  time?: number;
  msg?: string;
  id?: string;
  [k: string]: unknown;
}

export interface TsctlResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Epoch ms (see clock.ts) just before the spawn, and when it had exited. */
  spawnedAt: number;
  endedAt: number;
  ms: number;
}

export interface Started {
  /** The index in `lines` of this process's first log line. */
  from: number;
  spawnedAt: number;
  /** When the bench read the "tsruncd serving" line. */
  servingAt: number;
  /** The "tsruncd serving" line (whether boot's reconcile is done by then depends on the version). */
  serving: LogLine;
}

const SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export class BenchDaemon {
  readonly root: TempRoot;
  readonly prefix: string;
  readonly state: string;
  readonly address: string;
  /** The namespace of every container the bench makes (also their parent cgroup: swept). */
  readonly namespace = `b${randomBytes(5).toString("hex")}`;
  /** One busybox rootfs shared by all containers (runc mounts it in each container's own namespace). */
  readonly rootfs: string;
  readonly env: Record<string, string>;
  readonly lines: LogLine[] = [];
  #raw: string[] = [];
  #partial = "";
  #proc: ResultPromise | undefined;
  #exited: Promise<unknown> | undefined;
  /** Set when the current process has exited (exitCode stays null after a signal). */
  #gone = true;
  #watchers = new Set<() => void>();

  private constructor(root: TempRoot, nodeDir: string) {
    this.root = root;
    root.scope.namespaces.push(this.namespace);
    this.prefix = join(root.path, "prefix");
    this.state = join(root.path, "state");
    this.address = join(this.state, "tsruncd.sock");
    this.rootfs = makeBusyboxRootfs(join(root.path, "rootfs"));
    this.env = {
      // Our shim first, then node (the launchers' `#!/usr/bin/env node`), then the system's.
      PATH: `${join(this.prefix, "bin")}:${nodeDir}:${SYSTEM_PATH}`,
      HOME: process.env.HOME ?? "/root",
      TSRUNC_FIFO_DIR: join(root.path, "fifo"),
    };
  }

  /** A temp root with tsrunc installed in it (scripts/install), swept by `t`'s teardown. */
  static async create(t: TestLike): Promise<BenchDaemon> {
    const root = tempRoot(t);
    const d = new BenchDaemon(root, join(process.execPath, ".."));
    mkdirSync(d.prefix);
    const r = await execa("bash", [join(repo, "scripts/install"), d.prefix], {
      env: { PATH: d.env.PATH ?? SYSTEM_PATH },
      extendEnv: false,
      reject: false,
    });
    if (r.exitCode !== 0) throw new Error(`scripts/install ${d.prefix}: ${r.stderr}`);
    return d;
  }

  bin(name: "tsruncd" | "tsctl" | "containerd-shim-tsrunc-v2"): string {
    return join(this.prefix, "bin", name);
  }

  pid(): number | undefined {
    return this.#proc && !this.#gone ? this.#proc.pid : undefined;
  }

  /** The last lines of tsruncd's log (for failure messages). */
  tail(n = 30): string {
    return this.#raw.slice(-n).join("\n");
  }

  #onData(chunk: string): void {
    this.#partial += chunk;
    const at = now();
    let nl = this.#partial.indexOf("\n");
    while (nl >= 0) {
      const line = this.#partial.slice(0, nl);
      this.#partial = this.#partial.slice(nl + 1);
      this.#raw.push(line);
      if (this.#raw.length > 2000) this.#raw.splice(0, 1000);
      try {
        const j = JSON.parse(line) as Record<string, unknown>;
        if (j && typeof j === "object") this.lines.push({ ...j, readAt: at });
      } catch {
        // not a JSON line (a crash message): kept in #raw
      }
      nl = this.#partial.indexOf("\n");
    }
    for (const w of this.#watchers) w();
  }

  /** Resolves with the first log line from index `from` on that `pred` accepts. */
  waitLine(pred: (l: LogLine) => boolean, from: number, what: string, timeoutMs = 30_000): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.lines.slice(from).find(pred);
        if (found) {
          finish();
          resolve(found);
        } else if (this.#gone) {
          finish();
          reject(new Error(`tsruncd exited before ${what}:\n${this.tail()}`));
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`no ${what} within ${timeoutMs} ms:\n${this.tail()}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.#watchers.delete(check);
      };
      this.#watchers.add(check);
      check();
    });
  }

  /** Starts tsruncd and waits for its "tsruncd serving" line. */
  async start(opts: { debug?: boolean } = {}): Promise<Started> {
    if (this.pid()) throw new Error("tsruncd is already running");
    const from = this.lines.length;
    const args = ["--root", join(this.root.path, "root"), "--state", this.state, "--address", this.address];
    if (opts.debug) args.push("--log-level", "debug", "--debug-shims");
    const spawnedAt = now();
    const p = execa(this.bin("tsruncd"), args, {
      env: this.env,
      extendEnv: false,
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
      buffer: false,
      reject: false,
    });
    this.#proc = p;
    this.#gone = false;
    const gone = () => {
      this.#gone = true;
      this.#wake();
    };
    this.#exited = p.then(gone, gone);
    p.stderr?.setEncoding("utf8");
    p.stderr?.on("data", (d: string) => this.#onData(d));
    const serving = await this.waitLine((l) => l.msg === "tsruncd serving", from, '"tsruncd serving"');
    return { from, spawnedAt, servingAt: serving.readAt, serving };
  }

  #wake(): void {
    for (const w of this.#watchers) w();
  }

  async #signal(sig: NodeJS.Signals, graceMs: number): Promise<void> {
    const p = this.#proc;
    if (!p || this.#gone) return;
    p.kill(sig);
    const timer = setTimeout(() => p.kill("SIGKILL"), graceMs);
    await this.#exited;
    clearTimeout(timer);
  }

  /** SIGKILL and wait: shims and containers keep running. */
  kill(): Promise<void> {
    return this.#signal("SIGKILL", 0);
  }

  /** SIGTERM (SIGKILL after 5 s) and wait: containers keep running. */
  stop(): Promise<void> {
    return this.#signal("SIGTERM", 5000);
  }

  /** `tsctl --address A -n NS …args`, timed; never rejects. */
  async tsctl(args: string[], opts: { address?: string; timeoutMs?: number } = {}): Promise<TsctlResult> {
    const argv = ["--address", opts.address ?? this.address, "-n", this.namespace, ...args];
    const spawnedAt = now();
    const r = await execa(this.bin("tsctl"), argv, {
      env: this.env,
      extendEnv: false,
      stdin: "ignore",
      reject: false,
      timeout: opts.timeoutMs ?? 60_000,
    });
    const endedAt = now();
    return {
      exitCode: r.exitCode ?? -1,
      stdout: String(r.stdout),
      stderr: String(r.stderr),
      spawnedAt,
      endedAt,
      ms: endedAt - spawnedAt,
    };
  }

  /** Like tsctl(), but throws (with the end of tsruncd's log) unless it exits 0. */
  async tsctlOk(args: string[], opts: { address?: string; timeoutMs?: number } = {}): Promise<TsctlResult> {
    const r = await this.tsctl(args, opts);
    if (r.exitCode !== 0)
      throw new Error(`tsctl ${args.join(" ")}: exit ${r.exitCode}: ${r.stderr.trim()}\n${this.tail(15)}`);
    return r;
  }
}
