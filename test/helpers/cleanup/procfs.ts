// Processes, from /proc: which ones belong to a scope, and killing them.

import * as fs from "node:fs";
import { isUnder, type LeakScope } from "./scope.js";
import { readText, sleepSync } from "./sync-fs.js";

export interface ProcessInfo {
  pid: number;
  ppid: number;
  state: string;
  argv: string[];
  /** Why the process was attributed to the scope. */
  reason: string;
}

interface RawProc {
  pid: number;
  ppid: number;
  state: string;
  argv: string[];
}

function readProc(pid: number): RawProc | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  // comm may contain spaces and parentheses: the fields start after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cmdline = readText(`/proc/${pid}/cmdline`) ?? "";
  const argv = cmdline.split("\0");
  if (argv.at(-1) === "") argv.pop();
  return { pid, ppid: Number(rest[1]), state: rest[0] ?? "?", argv };
}

function allPids(): number[] {
  return fs
    .readdirSync("/proc")
    .filter((n) => /^[0-9]+$/.test(n))
    .map(Number);
}

/** This process and its ancestors: never killed, never reported. */
export function selfAndAncestors(): Set<number> {
  const out = new Set<number>();
  let pid = process.pid;
  while (pid > 0 && !out.has(pid)) {
    out.add(pid);
    const p = readProc(pid);
    if (!p) break;
    pid = p.ppid;
  }
  return out;
}

function cgroupPaths(pid: number): string[] {
  const text = readText(`/proc/${pid}/cgroup`) ?? "";
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => line.split(":").slice(2).join(":"));
}

function linkTarget(p: string): string | undefined {
  try {
    return fs.readlinkSync(p);
  } catch {
    return undefined;
  }
}

/**
 * Live (non-zombie) processes attributed to the scope: command line mentions the temp root or a
 * needle, working directory or executable under the temp root, or member of a namespace's cgroup.
 * Set `includeCgroupMembers: false` to leave container processes (found by cgroup only) out.
 */
export function findScopeProcesses(scope: LeakScope, includeCgroupMembers = true): ProcessInfo[] {
  const skip = selfAndAncestors();
  const needles = [`${scope.tempRoot}/`, ...(scope.needles ?? [])];
  const out: ProcessInfo[] = [];
  for (const pid of allPids()) {
    if (skip.has(pid)) continue;
    const p = readProc(pid);
    if (!p || p.state === "Z" || p.state === "X") continue;
    let reason: string | undefined;
    const joined = p.argv.join(" ");
    const needle = needles.find((n) => joined.includes(n) || p.argv.includes(n.replace(/\/$/, "")));
    if (needle) reason = `cmdline mentions ${needle}`;
    if (!reason) {
      const cwd = linkTarget(`/proc/${pid}/cwd`);
      const exe = linkTarget(`/proc/${pid}/exe`);
      if (cwd && isUnder(cwd, scope.tempRoot)) reason = `cwd ${cwd}`;
      else if (exe && isUnder(exe, scope.tempRoot)) reason = `exe ${exe}`;
    }
    if (!reason && includeCgroupMembers) {
      const cg = cgroupPaths(pid).find((c) => scope.namespaces.some((ns) => isUnder(c, `/${ns}`)));
      if (cg) reason = `cgroup ${cg}`;
    }
    if (reason) out.push({ ...p, reason });
  }
  return out;
}

function isAlive(pid: number): boolean {
  const p = readProc(pid);
  return p !== undefined && p.state !== "Z" && p.state !== "X";
}

/** SIGKILL the pids and wait (up to timeoutMs) until each is gone or a zombie. Returns the survivors. */
export function killAndWaitSync(pids: Iterable<number>, timeoutMs = 5000): number[] {
  const list = [...pids];
  for (const pid of list) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + timeoutMs;
  let alive = list.filter(isAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    sleepSync(20);
    alive = alive.filter(isAlive);
  }
  return alive;
}
