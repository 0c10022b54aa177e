// The shim's runc driver: one method per runc command, each one awaited runc process spawned with
// node:child_process (run-process.ts; never a shell). Every call gets a private temp directory (mode 0700) holding its own
// `--log` file — so concurrent calls never read each other's errors — and, for exec, the process
// spec; the directory is removed before the call returns. Failures reject with a RuncError
// carrying runc's own message and a kind (see runc-errors.ts).

import { appendFile, mkdtemp, open, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runProcess } from "../run-process.js";
import {
  checkId,
  checkPath,
  checkpointArgs,
  checkSignal,
  createArgs,
  deleteArgs,
  execArgs,
  globalArgs,
  killArgs,
} from "./runc-args.js";
import { classifyRuncMessage, RuncError } from "./runc-errors.js";
import { criuErrorLines, criuLogPath, lastLogError, stderrMessage } from "./runc-log.js";
import { parseFeatures, parsePids, parseState, parseStats, parseVersion } from "./runc-parse.js";
import { openStdio, type SpawnStdio } from "./runc-stdio.js";
import type {
  CallOptions,
  CheckpointOptions,
  ContainerState,
  CreateOptions,
  DeleteOptions,
  EventsOptions,
  ExecOptions,
  KillOptions,
  LinuxResources,
  ProcessSpec,
  RuncFeatures,
  RuncOptions,
  RuncStats,
  RuncVersion,
} from "./runc-types.js";

/** How much of a CRIU log the driver reads for its error lines (the end of it). */
const CRIU_LOG_TAIL = 256 * 1024;

interface RunSpec {
  command: string;
  /** runc's arguments after the global flags; `dir` is the call's private directory. */
  args: (dir: string) => string[];
  call: CallOptions | undefined;
  /** Files to write into the call's directory (mode 0600) before runc starts. */
  files?: Record<string, string>;
  /** The container's stdio (create, exec): runc's fds 0-2 are these, nothing is captured. */
  stdio?: { stdin: SpawnStdio; stdout: SpawnStdio; stderr: SpawnStdio };
  /** Written to runc's stdin (update --resources -). */
  input?: string;
  /** Turns runc's message into a richer error (checkpoint reads CRIU's log). */
  enrich?: (err: RuncError) => Promise<RuncError>;
}

export class Runc {
  readonly binary: string;
  readonly root: string;
  readonly logPath: string | undefined;
  readonly systemdCgroup: boolean;
  readonly criu: string | undefined;
  private readonly options: RuncOptions;
  private readonly tmpDir: string;

  constructor(options: RuncOptions) {
    checkPath("new Runc", "root", options.root);
    if (options.root === undefined)
      throw new RuncError("root is required", { kind: "invalid-argument", command: "new Runc" });
    checkPath("new Runc", "logPath", options.logPath);
    checkPath("new Runc", "tmpDir", options.tmpDir);
    const binary = options.binary === undefined || options.binary === "" ? "runc" : options.binary;
    this.options = { ...options, binary };
    this.binary = binary;
    this.root = options.root;
    this.logPath = options.logPath;
    this.systemdCgroup = options.systemdCgroup === true;
    this.criu = options.criu;
    this.tmpDir = options.tmpDir ?? tmpdir();
  }

  /**
   * `runc create`: creates the container and its init, which waits for `start`. Resolves once runc
   * has exited (the init lives on, re-parented) with the init's pid from the pid file.
   */
  async create(id: string, bundle: string, options: CreateOptions): Promise<{ pid: number }> {
    checkId("create", id);
    checkPath("create", "bundle", bundle);
    checkPath("create", "pidFile", options.pidFile);
    checkPath("create", "consoleSocket", options.consoleSocket);
    const stdio = await openStdio("create", options.stdio);
    try {
      await this.run({
        command: "create",
        args: () => createArgs(id, bundle, options),
        call: options,
        stdio,
      });
    } finally {
      await stdio.close();
    }
    return { pid: await this.readPidFile("create", options.pidFile) };
  }

  /** `runc start`: lets the created init exec the container's process. */
  async start(id: string, call?: CallOptions): Promise<void> {
    checkId("start", id);
    await this.run({ command: "start", args: () => ["start", id], call });
  }

  /** `runc state`. */
  async state(id: string, call?: CallOptions): Promise<ContainerState> {
    checkId("state", id);
    const out = await this.run({ command: "state", args: () => ["state", id], call });
    return this.parse("state", () => parseState(out));
  }

  /** `runc kill [--all] ID SIGNAL`. */
  async kill(id: string, signal: number, options?: KillOptions): Promise<void> {
    checkId("kill", id);
    checkSignal("kill", signal);
    await this.run({
      command: "kill",
      args: () => killArgs(id, signal, options?.all === true),
      call: options,
    });
  }

  /** `runc delete [--force]`. */
  async delete(id: string, options?: DeleteOptions): Promise<void> {
    checkId("delete", id);
    await this.run({ command: "delete", args: () => deleteArgs(id, options?.force === true), call: options });
  }

  /** `runc ps --format json`: the pids of the container's processes (empty when it has none). */
  async ps(id: string, call?: CallOptions): Promise<number[]> {
    checkId("ps", id);
    const out = await this.run({ command: "ps", args: () => ["ps", "--format", "json", id], call });
    return this.parse("ps", () => parsePids(out));
  }

  /** `runc pause` (freezer). */
  async pause(id: string, call?: CallOptions): Promise<void> {
    checkId("pause", id);
    await this.run({ command: "pause", args: () => ["pause", id], call });
  }

  /** `runc resume`. */
  async resume(id: string, call?: CallOptions): Promise<void> {
    checkId("resume", id);
    await this.run({ command: "resume", args: () => ["resume", id], call });
  }

  /** `runc update --resources -` with the OCI LinuxResources JSON on stdin. */
  async update(id: string, resources: LinuxResources | string, call?: CallOptions): Promise<void> {
    checkId("update", id);
    const input = jsonObjectText("update", "resources", resources);
    await this.run({ command: "update", args: () => ["update", "--resources", "-", id], call, input });
  }

  /**
   * `runc exec --detach --pid-file F --process FILE`: the spec goes to a 0600 file in the call's
   * private directory, removed before returning. Resolves with the new process's pid once runc
   * has exited (the process runs on, re-parented).
   */
  async exec(id: string, processSpec: ProcessSpec | string, options: ExecOptions): Promise<{ pid: number }> {
    checkId("exec", id);
    checkPath("exec", "pidFile", options.pidFile);
    checkPath("exec", "consoleSocket", options.consoleSocket);
    const spec = jsonObjectText("exec", "process spec", processSpec);
    const stdio = await openStdio("exec", options.stdio);
    try {
      await this.run({
        command: "exec",
        args: (dir) => execArgs(id, join(dir, "process.json"), options),
        call: options,
        files: { "process.json": spec },
        stdio,
      });
    } finally {
      await stdio.close();
    }
    return { pid: await this.readPidFile("exec", options.pidFile) };
  }

  /**
   * `runc checkpoint`. When CRIU fails, runc says only "criu failed: type DUMP errno 0\nlog file:
   * PATH"; the error's message then also carries CRIU's own error lines from that log
   * (RuncError.criuErrors).
   */
  async checkpoint(id: string, options: CheckpointOptions): Promise<void> {
    checkId("checkpoint", id);
    checkPath("checkpoint", "imagePath", options.imagePath);
    if (options.imagePath === undefined) {
      throw new RuncError("imagePath is required", { kind: "invalid-argument", command: "checkpoint" });
    }
    checkPath("checkpoint", "workPath", options.workPath);
    if (
      options.parentPath !== undefined &&
      (options.parentPath === "" || options.parentPath.includes("\0"))
    ) {
      throw new RuncError("parentPath must be a non-empty path", {
        kind: "invalid-argument",
        command: "checkpoint",
      });
    }
    for (const ns of options.emptyNamespaces ?? []) {
      if (!/^[a-z]+$/.test(ns)) {
        throw new RuncError(`bad namespace type ${JSON.stringify(ns)}`, {
          kind: "invalid-argument",
          command: "checkpoint",
        });
      }
    }
    await this.run({
      command: "checkpoint",
      args: () => checkpointArgs(id, options),
      call: options,
      enrich: (err) => withCriuErrors(err),
    });
  }

  /** `runc events --stats`: one snapshot of the container's cgroup statistics. */
  async events(id: string, options?: EventsOptions): Promise<RuncStats> {
    checkId("events", id);
    const out = await this.run({ command: "events", args: () => ["events", "--stats", id], call: options });
    return this.parse("events", () => parseStats(out));
  }

  /** Shorthand for events(id, { stats: true }). */
  stats(id: string, call?: CallOptions): Promise<RuncStats> {
    return this.events(id, { ...call, stats: true });
  }

  /** `runc features` (experimental in runc 1.1), or null when this runc has no such command. */
  async features(call?: CallOptions): Promise<RuncFeatures | null> {
    let out: string;
    try {
      out = await this.run({ command: "features", args: () => ["features"], call });
    } catch (err) {
      if (err instanceof RuncError && err.kind === "unsupported") return null;
      throw err;
    }
    return this.parse("features", () => parseFeatures(out));
  }

  /** `runc --version`. */
  async version(call?: CallOptions): Promise<RuncVersion> {
    const out = await this.run({ command: "version", args: () => ["--version"], call });
    return this.parse("version", () => parseVersion(out));
  }

  private parse<T>(command: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw new RuncError((err as Error).message, { kind: "failed", command, cause: err });
    }
  }

  private async readPidFile(command: string, pidFile: string): Promise<number> {
    let text: string;
    try {
      text = await readFile(pidFile, "utf8");
    } catch (err) {
      throw new RuncError(
        `runc ${command} succeeded but its pid file is unreadable: ${(err as Error).message}`,
        {
          kind: "failed",
          command,
          cause: err,
        },
      );
    }
    const pid = Number(text.trim());
    if (!Number.isInteger(pid) || pid <= 0) {
      throw new RuncError(`runc ${command} wrote a bad pid file: ${JSON.stringify(text.slice(0, 40))}`, {
        kind: "failed",
        command,
      });
    }
    return pid;
  }

  /** Runs runc once and resolves with its stdout, or rejects with a RuncError. */
  private async run(spec: RunSpec): Promise<string> {
    const { command, call } = spec;
    const signal = call?.signal;
    if (signal?.aborted) throw canceled(command, [], signal);
    const timeout = call?.timeoutMs ?? this.options.timeoutMs ?? 0;
    if (!Number.isFinite(timeout) || timeout < 0) {
      throw new RuncError(`timeoutMs must be a finite number >= 0, got ${timeout}`, {
        kind: "invalid-argument",
        command,
      });
    }
    const dir = await mkdtemp(join(this.tmpDir, "tsrunc-runc-"));
    try {
      for (const [name, content] of Object.entries(spec.files ?? {})) {
        await writeFile(join(dir, name), content, { mode: 0o600 });
      }
      const logFile = join(dir, "log.json");
      const args = [...globalArgs(this.options, logFile), ...spec.args(dir)];
      const result = await runProcess(this.binary, args, {
        stdin: spec.stdio?.stdin ?? (spec.input === undefined ? "ignore" : "pipe"),
        stdout: spec.stdio?.stdout ?? "pipe",
        stderr: spec.stdio?.stderr ?? "pipe",
        ...(spec.input === undefined ? {} : { input: spec.input }),
        timeoutMs: timeout,
        ...(signal === undefined ? {} : { signal }),
      });
      const log = await readFile(logFile, "utf8").catch(() => "");
      if (log !== "" && this.logPath !== undefined) await appendFile(this.logPath, log).catch(() => {});
      const { stdout, stderr } = result;
      if (!result.failed) return stdout;

      if (result.canceled) throw canceled(command, args, signal, result);
      if (result.timedOut) {
        throw new RuncError(`runc ${command} timed out after ${timeout}ms and was killed`, {
          kind: "timeout",
          command,
          args,
          stderr,
          cause: result,
        });
      }
      const exitCode = typeof result.exitCode === "number" ? result.exitCode : undefined;
      const message =
        lastLogError(log) ??
        stderrMessage(stderr) ??
        (exitCode === undefined
          ? `runc ${command}: ${result.message}`
          : `runc ${command} exited with status ${exitCode}`);
      // Spawn failures (ENOENT, EACCES…) and signals are never runc's well-known messages.
      const kind = exitCode === undefined ? "failed" : classifyRuncMessage(message);
      let err = new RuncError(message, { kind, command, args, exitCode, stderr, cause: result });
      if (spec.enrich !== undefined) err = await spec.enrich(err);
      throw err;
    } finally {
      await rm(dir, { recursive: true, force: true }).catch(() => {});
    }
  }
}

function canceled(
  command: string,
  args: readonly string[],
  signal?: AbortSignal,
  cause?: unknown,
): RuncError {
  const reason = signal?.reason;
  const why =
    reason instanceof Error ? `: ${reason.message}` : reason === undefined ? "" : `: ${String(reason)}`;
  return new RuncError(`runc ${command} canceled${why}`, {
    kind: "canceled",
    command,
    args,
    cause: cause ?? reason,
  });
}

/** A JSON object's text: objects are serialized, strings must already hold a JSON object. */
function jsonObjectText(command: string, what: string, value: object | string): string {
  if (typeof value === "string") {
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch (err) {
      throw new RuncError(`${what} is not JSON: ${(err as Error).message}`, {
        kind: "invalid-argument",
        command,
      });
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw new RuncError(`${what} must be a JSON object`, { kind: "invalid-argument", command });
    }
    return value;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new RuncError(`${what} must be an object`, { kind: "invalid-argument", command });
  }
  return JSON.stringify(value);
}

/** Adds CRIU's own error lines (from the log runc names) to a checkpoint error. */
async function withCriuErrors(err: RuncError): Promise<RuncError> {
  const path = criuLogPath(err.message);
  if (path === undefined || !path.startsWith("/")) return err;
  let text: string;
  try {
    const handle = await open(path, "r");
    try {
      const { size } = await handle.stat();
      const start = Math.max(0, size - CRIU_LOG_TAIL);
      const buf = Buffer.alloc(size - start);
      await handle.read(buf, 0, buf.length, start);
      text = buf.toString("utf8");
    } finally {
      await handle.close();
    }
  } catch {
    return err;
  }
  const lines = criuErrorLines(text);
  if (lines.length === 0) return err;
  return new RuncError(`${err.message}\ncriu: ${lines.join("\ncriu: ")}`, {
    kind: err.kind,
    command: err.command,
    args: err.args,
    ...(err.exitCode === undefined ? {} : { exitCode: err.exitCode }),
    stderr: err.stderr,
    criuErrors: lines,
    cause: err.cause,
  });
}
