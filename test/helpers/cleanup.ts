// Finding and removing everything a cross-process test can leave behind: processes, runc
// containers, mounts, cgroups, shim sockets and the test's temp root.
//
// Everything here is synchronous on purpose: the same sweep runs from a tap teardown and from a
// process exit/signal hook (where nothing asynchronous gets to run), so a test that dies still
// leaves the machine clean.

import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { execaSync } from "execa";
import { onExit } from "signal-exit";
import type { Extra } from "tap";

/** What belongs to one test: the things a sweep may kill or delete and a leak check looks for. */
export interface LeakScope {
  /** The test's temp root, e.g. /tmp/tsr-AbC123 (absolute, no trailing slash). */
  readonly tempRoot: string;
  /** containerd namespaces the test used; each one is also the parent cgroup of its containers. */
  readonly namespaces: readonly string[];
  /**
   * Strings whose presence in a process's command line makes it ours (e.g. containerd's grpc
   * address, matched in a shim's `-address` argument). The temp root is always one.
   */
  readonly needles?: readonly string[];
  /** Extra runc roots to sweep besides /run/containerd/runc/<namespace> and those inside the temp root. */
  readonly runcRoots?: readonly string[];
  /** Socket paths known to belong to the test (shim sockets outside the temp root). */
  readonly sockets?: Iterable<string>;
}

export interface ProcessInfo {
  pid: number;
  ppid: number;
  state: string;
  argv: string[];
  /** Why the process was attributed to the scope. */
  reason: string;
}

export interface Leaks {
  processes: ProcessInfo[];
  mounts: string[];
  runcContainers: string[];
  runcRoots: string[];
  cgroups: string[];
  sockets: string[];
  paths: string[];
}

/**
 * Default runc roots (a namespace's containers live in <root>/<namespace>): the Go shim's, and
 * our shim's (packages/shim-runc-v2, unless TSRUNC_RUNC_ROOT says otherwise).
 */
export const DEFAULT_RUNC_ROOTS = ["/run/containerd/runc", "/run/tsrunc/runc"] as const;
/** Where containerd 1.6's shims put their sockets. */
export const SHIM_SOCKET_DIR = "/run/containerd/s";

/** The socket path containerd-shim-runc-v2 (1.6) uses: sha256(join(address, namespace, id)). */
export function goShimSocketPath(grpcAddress: string, namespace: string, id: string): string {
  const digest = createHash("sha256")
    .update(path.join(grpcAddress, namespace, id))
    .digest("hex");
  return path.join(SHIM_SOCKET_DIR, digest);
}

export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

function exists(p: string): boolean {
  try {
    fs.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

function isUnder(p: string, root: string): boolean {
  return p === root || p.startsWith(`${root}/`);
}

// ---------------------------------------------------------------------------------------------
// processes

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
function selfAndAncestors(): Set<number> {
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

/** SIGKILL the pids and wait (up to timeoutMs) until each is gone or a zombie. */
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

// ---------------------------------------------------------------------------------------------
// mounts

interface MountEntry {
  root: string;
  mountPoint: string;
  fsType: string;
  superOptions: string;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

export function readMountInfo(): MountEntry[] {
  const text = readText("/proc/self/mountinfo") ?? "";
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const l = left.split(" ");
    const r = right.split(" ");
    out.push({
      root: unescapeMount(l[3] ?? ""),
      mountPoint: unescapeMount(l[4] ?? ""),
      fsType: r[0] ?? "",
      superOptions: r[2] ?? "",
    });
  }
  return out;
}

/** Mount points at or under the temp root, deepest first. */
export function findScopeMounts(scope: LeakScope): string[] {
  const points = readMountInfo()
    .map((m) => m.mountPoint)
    .filter((p) => isUnder(p, scope.tempRoot));
  return [...new Set(points)].sort(
    (a, b) => b.split("/").length - a.split("/").length || b.length - a.length,
  );
}

// ---------------------------------------------------------------------------------------------
// cgroups

/** Every cgroup directory (v1 controllers and the v2/unified tree) of the namespaces, deepest first. */
export function findScopeCgroups(scope: LeakScope): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const m of readMountInfo()) {
    if (m.fsType !== "cgroup" && m.fsType !== "cgroup2") continue;
    for (const ns of scope.namespaces) {
      const target = `/${ns}`;
      if (!isUnder(target, m.root) && m.root !== "/") continue;
      const rel = m.root === "/" ? target : target.slice(m.root.length);
      const dir = path.join(m.mountPoint, rel);
      if (seen.has(dir)) continue;
      seen.add(dir);
      walkDirs(dir, out, 16);
    }
  }
  return out.sort((a, b) => b.split("/").length - a.split("/").length);
}

function walkDirs(dir: string, out: string[], depth: number): void {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  out.push(dir);
  if (depth <= 0) return;
  for (const e of entries) if (e.isDirectory()) walkDirs(path.join(dir, e.name), out, depth - 1);
}

function thawAndKillCgroups(dirs: string[]): number[] {
  const pids = new Set<number>();
  for (const dir of dirs) {
    for (const [file, value] of [
      ["freezer.state", "THAWED"],
      ["cgroup.freeze", "0"],
    ] as const) {
      const f = path.join(dir, file);
      if (exists(f)) {
        try {
          fs.writeFileSync(f, value);
        } catch {
          // best effort
        }
      }
    }
    for (const line of (readText(path.join(dir, "cgroup.procs")) ?? "").split("\n")) {
      if (/^[0-9]+$/.test(line)) pids.add(Number(line));
    }
  }
  const skip = selfAndAncestors();
  return [...pids].filter((p) => !skip.has(p));
}

// ---------------------------------------------------------------------------------------------
// runc

/** Runc roots in scope that exist: <default root>/<ns>, the extra ones, and any inside the temp root. */
export function findRuncRoots(scope: LeakScope): string[] {
  const roots = new Set<string>();
  for (const ns of scope.namespaces) for (const base of DEFAULT_RUNC_ROOTS) roots.add(path.join(base, ns));
  for (const r of scope.runcRoots ?? []) roots.add(r);
  if (exists(scope.tempRoot)) findRuncRootsUnder(scope.tempRoot, roots, 8, fs.statSync(scope.tempRoot).dev);
  return [...roots].filter(exists);
}

function findRuncRootsUnder(dir: string, roots: Set<string>, depth: number, dev: number): void {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    if (!e.isDirectory()) continue;
    const child = path.join(dir, e.name);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(child);
    } catch {
      continue;
    }
    if (st.dev !== dev) continue; // never walk into mounts
    if (exists(path.join(child, "state.json"))) {
      roots.add(dir);
      continue;
    }
    if (depth > 0) findRuncRootsUnder(child, roots, depth - 1, dev);
  }
}

/** Container state dirs (`<root>/<id>` holding state.json) of a runc root. */
export function runcContainersIn(root: string): string[] {
  try {
    return fs
      .readdirSync(root, { withFileTypes: true })
      .filter((e) => e.isDirectory() && exists(path.join(root, e.name, "state.json")))
      .map((e) => e.name);
  } catch {
    return [];
  }
}

function runcDeleteAll(roots: string[], errors: string[]): void {
  for (const root of roots) {
    for (const id of runcContainersIn(root)) {
      const r = execaSync("runc", ["--root", root, "delete", "--force", id], {
        reject: false,
        timeout: 15000,
      });
      if (r.exitCode !== 0 && exists(path.join(root, id, "state.json"))) {
        errors.push(`runc --root ${root} delete --force ${id}: ${String(r.stderr).trim() || r.exitCode}`);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// sockets

/** Paths of bound unix sockets (from /proc/net/unix) at or under the temp root or in `sockets`. */
function boundSockets(scope: LeakScope): string[] {
  const known = new Set(scope.sockets ?? []);
  const out = new Set<string>();
  for (const line of (readText("/proc/net/unix") ?? "").split("\n").slice(1)) {
    const p = line.trim().split(/\s+/)[7];
    if (p && (isUnder(p, scope.tempRoot) || known.has(p))) out.add(p);
  }
  return [...out];
}

// ---------------------------------------------------------------------------------------------
// the leak check and the sweep

export function findLeaks(scope: LeakScope): Leaks {
  const runcRoots = findRuncRoots(scope);
  const sockets = new Set(boundSockets(scope));
  for (const s of scope.sockets ?? []) if (exists(s)) sockets.add(s);
  return {
    processes: findScopeProcesses(scope),
    mounts: findScopeMounts(scope),
    runcContainers: runcRoots.flatMap((r) => runcContainersIn(r).map((id) => path.join(r, id))),
    runcRoots: runcRoots.filter((r) => !isUnder(r, scope.tempRoot)),
    cgroups: findScopeCgroups(scope),
    sockets: [...sockets],
    paths: exists(scope.tempRoot) ? [scope.tempRoot] : [],
  };
}

export function isClean(leaks: Leaks): boolean {
  return Object.values(leaks).every((v: unknown[]) => v.length === 0);
}

export function describeLeaks(leaks: Leaks): string {
  const lines: string[] = [];
  for (const p of leaks.processes) lines.push(`process ${p.pid} (${p.reason}): ${p.argv.join(" ")}`);
  for (const [k, v] of Object.entries(leaks)) {
    if (k === "processes") continue;
    for (const item of v as string[]) lines.push(`${k}: ${item}`);
  }
  return lines.join("\n");
}

/** Guard against sweeping (and rm -rf'ing) anything but a harness temp root. */
export function assertSweepableRoot(tempRoot: string): void {
  if (!/^\/tmp\/tsr-[A-Za-z0-9]{4,}$/.test(tempRoot)) {
    throw new Error(`refusing to sweep ${JSON.stringify(tempRoot)}: not a /tmp/tsr-XXXX temp root`);
  }
}

/**
 * Remove everything of the scope, in an order that works even if containerd and shims were
 * SIGKILLed half-way: kill the scope's processes (shims, runc, ctr — not yet the containers),
 * `runc delete --force` every container in scope's runc roots, thaw and kill what is still in the
 * namespaces' cgroups, remove shim sockets, `umount -l` mounts under the temp root (deepest
 * first), rmdir the cgroups (deepest first), then rm -rf the temp root. Returns what failed.
 * Idempotent: a second sweep finds nothing to do.
 */
export function sweepSync(scope: LeakScope): string[] {
  assertSweepableRoot(scope.tempRoot);
  const errors: string[] = [];

  // 1. Shims, runc invocations, ctr, daemons: anything that could still create something.
  for (let round = 0; round < 3; round++) {
    const procs = findScopeProcesses(scope, false);
    if (procs.length === 0) break;
    const stuck = killAndWaitSync(
      procs.map((p) => p.pid),
      3000,
    );
    if (round === 2 && stuck.length) errors.push(`processes survived SIGKILL: ${stuck.join(" ")}`);
  }

  // 2. Containers: runc first (it knows its cgroups and state), then whatever remains in the cgroups.
  const roots = findRuncRoots(scope);
  runcDeleteAll(roots, errors);
  for (let round = 0; round < 3; round++) {
    const pids = [
      ...new Set([
        ...thawAndKillCgroups(findScopeCgroups(scope)),
        ...findScopeProcesses(scope).map((p) => p.pid),
      ]),
    ];
    if (pids.length === 0) break;
    const stuck = killAndWaitSync(pids, 3000);
    if (round === 2 && stuck.length) errors.push(`container processes survived SIGKILL: ${stuck.join(" ")}`);
  }
  const leftover: string[] = [];
  runcDeleteAll(roots, leftover); // stopped by now: delete succeeds
  for (const root of roots) {
    for (const id of runcContainersIn(root)) {
      // runc refused even a stopped container: drop its state by hand.
      fs.rmSync(path.join(root, id), { recursive: true, force: true });
      errors.push(`removed runc state ${root}/${id} by hand (${leftover.join("; ")})`);
    }
    if (!isUnder(root, scope.tempRoot)) {
      try {
        fs.rmdirSync(root);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") errors.push(`rmdir ${root}: ${String(e)}`);
      }
    }
  }

  // 3. Sockets outside the temp root (shim sockets in /run/containerd/s).
  for (const s of scope.sockets ?? []) {
    try {
      if (fs.lstatSync(s).isSocket()) fs.unlinkSync(s);
    } catch {
      // gone
    }
  }

  // 4. Mounts under the temp root, deepest first; repeat while unmounting uncovers more.
  for (let round = 0; round < 5; round++) {
    const mounts = findScopeMounts(scope);
    if (mounts.length === 0) break;
    for (const m of mounts) {
      const r = execaSync("umount", ["-l", m], { reject: false, timeout: 10000 });
      if (r.exitCode !== 0 && round === 4) errors.push(`umount -l ${m}: ${String(r.stderr).trim()}`);
    }
  }

  // 5. Cgroups, deepest first (a just-killed process can keep one busy for a moment).
  for (let round = 0; round < 50; round++) {
    const dirs = findScopeCgroups(scope);
    if (dirs.length === 0) break;
    for (const d of dirs) {
      try {
        fs.rmdirSync(d);
      } catch (e) {
        if (round === 49) errors.push(`rmdir ${d}: ${(e as NodeJS.ErrnoException).code}`);
      }
    }
    if (findScopeCgroups(scope).length) sleepSync(20);
  }

  // 6. The temp root, unless something is still mounted in it.
  const stillMounted = findScopeMounts(scope);
  if (stillMounted.length) {
    errors.push(`not removing ${scope.tempRoot}: still mounted: ${stillMounted.join(" ")}`);
  } else {
    try {
      fs.rmSync(scope.tempRoot, { recursive: true, force: true, maxRetries: 3 });
    } catch (e) {
      errors.push(`rm -rf ${scope.tempRoot}: ${String(e)}`);
    }
  }
  return errors;
}

/** Structural subset of a tap Test, so helpers work with `t` and subtests alike. */
export interface TestLike {
  ok(value: unknown, message: string, extra: Extra): boolean;
  teardown(fn: () => unknown): void;
  passing(): boolean;
  comment(...args: unknown[]): void;
}

/** One assertion: nothing of the scope is left (processes, mounts, runc state, cgroups, sockets, temp root). */
export function assertNoLeaks(t: TestLike, scope: LeakScope, message = "nothing leaked"): boolean {
  const leaks = findLeaks(scope);
  const clean = isClean(leaks);
  return t.ok(clean, message, clean ? {} : { diagnostic: true, leaks: describeLeaks(leaks) });
}

// ---------------------------------------------------------------------------------------------
// last resort at process exit

const emergencies = new Set<() => void>();
let exitHookInstalled = false;

/**
 * Run `fn` (synchronously) if the process exits or is killed by a catchable signal while it is
 * still registered: the safety net for tests that die before their teardowns run. Returns the
 * function that unregisters it.
 */
export function onEmergencyExit(fn: () => void): () => void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    onExit(() => {
      for (const f of [...emergencies]) {
        emergencies.delete(f);
        try {
          f();
        } catch (e) {
          process.stderr.write(`tsr harness: emergency cleanup failed: ${String(e)}\n`);
        }
      }
    });
  }
  emergencies.add(fn);
  return () => {
    emergencies.delete(fn);
  };
}
