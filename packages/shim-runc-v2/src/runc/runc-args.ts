// runc's command lines, built from validated input. Every id must follow containerd's identifier
// rule and every path must be absolute before it reaches runc's argv: nothing from outside can
// become a flag, a relative path, or an id runc would turn into a path of its own.

import { isAbsolute } from "node:path";
import { identifierProblem } from "@tsrunc/shim-contract/identifiers";
import { RuncError } from "./runc-errors.js";
import type { CheckpointOptions, CreateOptions, ExecOptions, RuncOptions } from "./runc-types.js";

function invalid(command: string, message: string): RuncError {
  return new RuncError(message, { kind: "invalid-argument", command });
}

/** Throws a RuncError "invalid-argument" unless `id` is a containerd identifier. */
export function checkId(command: string, id: string): void {
  const problem = typeof id === "string" ? identifierProblem(id) : "container id must be a string";
  if (problem) throw invalid(command, `container id: ${problem}`);
}

/** Throws a RuncError "invalid-argument" unless `path` is absolute and free of NUL bytes. */
export function checkPath(command: string, name: string, path: string | undefined): void {
  if (path === undefined) return;
  if (typeof path !== "string" || !isAbsolute(path) || path.includes("\0")) {
    throw invalid(
      command,
      `${name} must be an absolute path, got ${JSON.stringify(String(path).slice(0, 200))}`,
    );
  }
}

/** Throws a RuncError "invalid-argument" unless `signal` is a signal number (1..64). */
export function checkSignal(command: string, signal: number): void {
  if (!Number.isInteger(signal) || signal < 1 || signal > 64) {
    throw invalid(command, `signal must be an integer from 1 to 64, got ${String(signal)}`);
  }
}

/** Global flags, in front of every subcommand. `logFile` is this call's private log. */
export function globalArgs(options: RuncOptions, logFile: string): string[] {
  const args = ["--root", options.root, "--log", logFile, "--log-format", "json"];
  if (options.debug) args.push("--debug");
  if (options.systemdCgroup) args.push("--systemd-cgroup");
  if (options.criu !== undefined) args.push("--criu", options.criu);
  if (options.rootless !== undefined) args.push("--rootless", String(options.rootless));
  return args;
}

export function createArgs(id: string, bundle: string, options: CreateOptions): string[] {
  const args = ["create", "--bundle", bundle, "--pid-file", options.pidFile];
  if (options.consoleSocket !== undefined) args.push("--console-socket", options.consoleSocket);
  if (options.noPivot) args.push("--no-pivot");
  if (options.noNewKeyring) args.push("--no-new-keyring");
  args.push(id);
  return args;
}

export function execArgs(id: string, processFile: string, options: ExecOptions): string[] {
  const args = ["exec", "--detach", "--pid-file", options.pidFile, "--process", processFile];
  if (options.consoleSocket !== undefined) args.push("--console-socket", options.consoleSocket);
  args.push(id);
  return args;
}

export function killArgs(id: string, signal: number, all: boolean): string[] {
  return all ? ["kill", "--all", id, String(signal)] : ["kill", id, String(signal)];
}

export function deleteArgs(id: string, force: boolean): string[] {
  return force ? ["delete", "--force", id] : ["delete", id];
}

export function checkpointArgs(id: string, options: CheckpointOptions): string[] {
  const args = ["checkpoint", "--image-path", options.imagePath];
  if (options.workPath !== undefined) args.push("--work-path", options.workPath);
  if (options.parentPath !== undefined) args.push("--parent-path", options.parentPath);
  if (options.leaveRunning) args.push("--leave-running");
  if (options.tcpEstablished) args.push("--tcp-established");
  if (options.extUnixSk) args.push("--ext-unix-sk");
  if (options.shellJob) args.push("--shell-job");
  if (options.fileLocks) args.push("--file-locks");
  if (options.preDump) args.push("--pre-dump");
  if (options.autoDedup) args.push("--auto-dedup");
  if (options.lazyPages) args.push("--lazy-pages");
  if (options.manageCgroupsMode !== undefined) args.push("--manage-cgroups-mode", options.manageCgroupsMode);
  for (const ns of options.emptyNamespaces ?? []) args.push("--empty-ns", ns);
  args.push(id);
  return args;
}
