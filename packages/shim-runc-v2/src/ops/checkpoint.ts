// Checkpoint: `runc checkpoint` (CRIU) of a running or paused container into the request's path.
//
// As containerd 1.6's runc shim does: options are a containerd.runc.v1.CheckpointOptions Any
// (exit → without --leave-running, open_tcp, external_unix_sockets, terminal → --shell-job,
// file_locks, empty_namespaces, cgroups_mode); the image goes to the request's path (containerd
// makes a temp dir when the client gave none); CRIU's work dir is the options' work_path, else a
// temp dir in the bundle that is removed afterwards; on failure CRIU's dump.log is kept as
// <bundle>/criu-dump.log and named in the error. The error also carries CRIU's own error lines
// (the runc driver reads them from the log runc names).
//
// A failed dump leaves the container as it was (CRIU stops before it touches the process when
// it fails early, as it does on this kernel), so the state is not changed. The call follows the
// request's deadline: runc is killed when containerd gives up.
//
// This file holds the request's checks and the mapping onto runc's flags; the checkpoint itself
// is InitProcess.checkpoint.
import { isAbsolute } from "node:path";
import { isAnyOf, runcoptions, type task, unpackAnyAs } from "@tsrunc/protocol/shim";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import type { CheckpointOptions } from "../runc/index.js";

const CGROUP_MODES = ["soft", "full", "strict", "ignore"] as const;

/** The request's options, or InvalidArgument. An absent or empty Any means the defaults. */
export function checkpointOptions(any: task.CheckpointTaskRequest["options"]): runcoptions.CheckpointOptions {
  if (!any || (!any.typeUrl && any.value.length === 0)) return runcoptions.CheckpointOptions.create();
  if (!isAnyOf(any, runcoptions.CheckpointOptions)) {
    throw new TtrpcError(
      Code.InvalidArgument,
      `checkpoint options must be ${runcoptions.CheckpointOptions.typeName}, got ${JSON.stringify(any.typeUrl)}`,
    );
  }
  try {
    return unpackAnyAs(any, runcoptions.CheckpointOptions);
  } catch (err) {
    throw new TtrpcError(Code.InvalidArgument, `bad checkpoint options: ${(err as Error).message}`);
  }
}

function absolute(what: string, path: string): string {
  if (!isAbsolute(path) || path.includes("\0")) {
    throw new TtrpcError(
      Code.InvalidArgument,
      `${what} must be an absolute path, got ${JSON.stringify(path)}`,
    );
  }
  return path;
}

/** The runc driver's options for a request; InvalidArgument for a bad path or cgroups mode. */
export function runcCheckpointOptions(
  imagePath: string,
  o: runcoptions.CheckpointOptions,
  workPath: string,
): CheckpointOptions {
  const mode = o.cgroupsMode;
  if (mode && !(CGROUP_MODES as readonly string[]).includes(mode)) {
    throw new TtrpcError(Code.InvalidArgument, `cgroups mode must be one of ${CGROUP_MODES.join(", ")}`);
  }
  for (const ns of o.emptyNamespaces) {
    if (!/^[a-z]+$/.test(ns))
      throw new TtrpcError(Code.InvalidArgument, `bad namespace type ${JSON.stringify(ns)}`);
  }
  return {
    imagePath,
    workPath,
    leaveRunning: !o.exit,
    tcpEstablished: o.openTcp,
    extUnixSk: o.externalUnixSockets,
    shellJob: o.terminal,
    fileLocks: o.fileLocks,
    ...(mode ? { manageCgroupsMode: mode as (typeof CGROUP_MODES)[number] } : {}),
    emptyNamespaces: o.emptyNamespaces,
  };
}

/** Where the image goes (the request's path, else the options') and CRIU's work dir if one was given. */
export function checkpointPaths(
  path: string,
  o: runcoptions.CheckpointOptions,
): { imagePath: string; workPath: string | undefined } {
  return {
    imagePath: absolute("checkpoint path", path || o.imagePath),
    workPath: o.workPath ? absolute("work path", o.workPath) : undefined,
  };
}
