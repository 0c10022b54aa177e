// What a fuzz campaign checks about a process afterwards: alive, resident memory, open file
// descriptors and zombie children, read from /proc.
import * as fs from "node:fs";
import { waitFor } from "../../helpers/wait.js";

export interface ProcSnapshot {
  pid: number;
  alive: boolean;
  rssKiB: number;
  fds: number;
  /** Children in state Z (exited, not reaped). */
  zombies: number[];
  children: number[];
}

function read(p: string): string | undefined {
  try {
    return fs.readFileSync(p, "utf8");
  } catch {
    return undefined;
  }
}

function state(pid: number): string | undefined {
  const stat = read(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  return stat.slice(stat.lastIndexOf(")") + 2)[0];
}

export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[] = [];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tasks) {
    for (const c of (read(`/proc/${pid}/task/${tid}/children`) ?? "").split(" ")) {
      if (/^[0-9]+$/.test(c)) out.push(Number(c));
    }
  }
  return out;
}

export function snapshot(pid: number): ProcSnapshot {
  const s = state(pid);
  const status = read(`/proc/${pid}/status`) ?? "";
  const rss = /VmRSS:\s+(\d+)/.exec(status);
  let fds = 0;
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    fds = -1;
  }
  const children = childrenOf(pid);
  return {
    pid,
    alive: s !== undefined && s !== "Z" && s !== "X",
    rssKiB: rss ? Number(rss[1]) : 0,
    fds,
    zombies: children.filter((c) => state(c) === "Z"),
    children,
  };
}

/** The fd targets of a process (for messages when the count does not come back). */
export function fdTargets(pid: number): string[] {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).map((fd) => {
      try {
        return `${fd} -> ${fs.readlinkSync(`/proc/${pid}/fd/${fd}`)}`;
      } catch {
        return `${fd} -> ?`;
      }
    });
  } catch {
    return [];
  }
}

/** Polls until `cond` holds for a fresh snapshot; returns the last snapshot either way. */
export async function settle(
  pid: number,
  cond: (s: ProcSnapshot) => boolean,
  timeoutMs = 5000,
): Promise<{ ok: boolean; snap: ProcSnapshot }> {
  let snap = snapshot(pid);
  const ok = await waitFor(
    () => {
      snap = snapshot(pid);
      return cond(snap);
    },
    { what: `process ${pid} to settle`, timeoutMs, intervalMs: 25 },
  ).then(
    () => true,
    () => false,
  );
  return { ok, snap };
}
