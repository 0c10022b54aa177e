// Chooses how a process's stdio is served from what containerd asked for.
import { ConsoleIO } from "./console-io.js";
import { isLogUri, LogUriIO } from "./log-uri-io.js";
import { ProcessIO } from "./stdio.js";
import type { MakePipe, StdioHandle, StdioPaths } from "./stdio-handle.js";

export async function openStdio(
  paths: StdioPaths,
  makePipe: MakePipe,
  ids: { containerId: string; namespace: string },
): Promise<StdioHandle> {
  if (paths.terminal) return ConsoleIO.open(paths);
  if (isLogUri(paths.stdout)) return LogUriIO.open(paths, makePipe, ids);
  return ProcessIO.open(paths, makePipe);
}
