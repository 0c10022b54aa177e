// Chooses how a process's stdio is served from what containerd asked for.
import { ConsoleIO } from "./console-io.js";
import { type MakePipe, ProcessIO, type StdioPaths } from "./stdio.js";
import type { StdioHandle } from "./stdio-handle.js";

export function openStdio(paths: StdioPaths, makePipe: MakePipe): StdioHandle {
  return paths.terminal ? ConsoleIO.open(paths) : ProcessIO.open(paths, makePipe);
}
