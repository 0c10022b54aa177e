// Stats: one snapshot of the container's cgroup statistics from `runc events --stats`, packed as
// containerd expects it — io.containerd.cgroups.v1.Metrics on a cgroup v1 (or hybrid) host,
// io.containerd.cgroups.v2.Metrics on a unified one (runc's own test: /sys/fs/cgroup/cgroup.controllers).
// `ctr task metrics` prints memory, cpuacct and pids from these.
//
// runc reports v1 and v2 in one shape (its types.Stats) with v1 meanings; v2's numbers are
// turned back into what containerd's cgroup v2 reader gives (microseconds, swap without memory).
// runc's JSON numbers pass through JSON.parse, so counters above 2^53 are rounded to a double
// (v1's "unlimited", 2^63 − 4096, is exact); uint64 fields are clamped to [0, 2^64 − 1].
// memory.oom_control (v1) and memory.events (v2), which runc does not report, are read from the
// cgroup the OOM watcher found.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { cgroup1, cgroup2, packAny, type task } from "@tsrunc/protocol/shim";
import type { RuncStats } from "../runc/index.js";
import { isUnifiedHost, type MemoryCgroup, parseFlatKeyed } from "./cgroup.js";

const U64_MAX = (1n << 64n) - 1n;

/** A JSON number (or absent) as a uint64. */
export function u64(v: unknown): bigint {
  if (typeof v === "bigint") return v < 0n ? 0n : v > U64_MAX ? U64_MAX : v;
  if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) return 0n;
  const b = BigInt(Math.trunc(v));
  return b > U64_MAX ? U64_MAX : b;
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function memoryEntry(v: unknown): cgroup1.MemoryEntry {
  const e = obj(v);
  return { limit: u64(e.limit), usage: u64(e.usage), max: u64(e.max), failcnt: u64(e.failcnt) };
}

/** runc's blkio lists use camelCase names (ioServiceBytesRecursive, …; queued is ioQueueRecursive). */
function blkioEntries(v: unknown, device: (major: bigint, minor: bigint) => string): cgroup1.BlkIOEntry[] {
  return arr(v).map((x) => {
    const e = obj(x);
    const major = u64(e.major);
    const minor = u64(e.minor);
    return {
      op: typeof e.op === "string" ? e.op : "",
      device: device(major, minor),
      major,
      minor,
      value: u64(e.value),
    };
  });
}

/** Extra files of the memory cgroup that runc does not report. */
export interface CgroupExtras {
  /** memory.oom_control (v1) */
  oomControl?: Record<string, number>;
  /** memory.events (v2) */
  memoryEvents?: Record<string, number>;
}

export function toV1Metrics(
  s: RuncStats,
  extras: CgroupExtras = {},
  device: (major: bigint, minor: bigint) => string = () => "",
): cgroup1.Metrics {
  const cpu = obj(s.cpu);
  const usage = obj(cpu.usage);
  const thr = obj(cpu.throttling);
  const mem = obj(s.memory);
  const raw = obj(mem.raw);
  const r = (k: string) => u64(raw[k]);
  const pids = obj(s.pids);
  const blkio = obj(s.blkio);
  return cgroup1.Metrics.create({
    cpu: {
      usage: {
        total: u64(usage.total),
        kernel: u64(usage.kernel),
        user: u64(usage.user),
        perCpu: arr(usage.percpu).map(u64),
      },
      throttling: {
        periods: u64(thr.periods),
        throttledPeriods: u64(thr.throttledPeriods),
        throttledTime: u64(thr.throttledTime),
      },
    },
    memory: {
      cache: r("cache"),
      rss: r("rss"),
      rssHuge: r("rss_huge"),
      mappedFile: r("mapped_file"),
      dirty: r("dirty"),
      writeback: r("writeback"),
      pgPgIn: r("pgpgin"),
      pgPgOut: r("pgpgout"),
      pgFault: r("pgfault"),
      pgMajFault: r("pgmajfault"),
      inactiveAnon: r("inactive_anon"),
      activeAnon: r("active_anon"),
      inactiveFile: r("inactive_file"),
      activeFile: r("active_file"),
      unevictable: r("unevictable"),
      hierarchicalMemoryLimit: r("hierarchical_memory_limit"),
      hierarchicalSwapLimit: r("hierarchical_memsw_limit"),
      totalCache: r("total_cache"),
      totalRss: r("total_rss"),
      totalRssHuge: r("total_rss_huge"),
      totalMappedFile: r("total_mapped_file"),
      totalDirty: r("total_dirty"),
      totalWriteback: r("total_writeback"),
      totalPgPgIn: r("total_pgpgin"),
      totalPgPgOut: r("total_pgpgout"),
      totalPgFault: r("total_pgfault"),
      totalPgMajFault: r("total_pgmajfault"),
      totalInactiveAnon: r("total_inactive_anon"),
      totalActiveAnon: r("total_active_anon"),
      totalInactiveFile: r("total_inactive_file"),
      totalActiveFile: r("total_active_file"),
      totalUnevictable: r("total_unevictable"),
      usage: memoryEntry(mem.usage),
      swap: memoryEntry(mem.swap),
      kernel: memoryEntry(mem.kernel),
      kernelTcp: memoryEntry(mem.kernelTCP),
    },
    pids: { current: u64(pids.current), limit: u64(pids.limit) },
    blkio: {
      ioServiceBytesRecursive: blkioEntries(blkio.ioServiceBytesRecursive, device),
      ioServicedRecursive: blkioEntries(blkio.ioServicedRecursive, device),
      ioQueuedRecursive: blkioEntries(blkio.ioQueueRecursive, device),
      ioServiceTimeRecursive: blkioEntries(blkio.ioServiceTimeRecursive, device),
      ioWaitTimeRecursive: blkioEntries(blkio.ioWaitTimeRecursive, device),
      ioMergedRecursive: blkioEntries(blkio.ioMergedRecursive, device),
      ioTimeRecursive: blkioEntries(blkio.ioTimeRecursive, device),
      sectorsRecursive: blkioEntries(blkio.sectorsRecursive, device),
    },
    hugetlb: Object.entries(obj(s.hugetlb)).map(([pagesize, v]) => {
      const h = obj(v);
      return { pagesize, usage: u64(h.usage), max: u64(h.max), failcnt: u64(h.failcnt) };
    }),
    network: networkStats(s.network_interfaces),
    ...(extras.oomControl
      ? {
          memoryOomControl: {
            oomKillDisable: u64(extras.oomControl.oom_kill_disable),
            underOom: u64(extras.oomControl.under_oom),
            oomKill: u64(extras.oomControl.oom_kill),
          },
        }
      : {}),
  });
}

/** runc's NetworkInterface has no json tags: its keys are the Go names. */
function networkStats(v: unknown): cgroup1.NetworkStat[] {
  return arr(v).map((x) => {
    const n = obj(x);
    return {
      name: typeof n.Name === "string" ? n.Name : "",
      rxBytes: u64(n.RxBytes),
      rxPackets: u64(n.RxPackets),
      rxErrors: u64(n.RxErrors),
      rxDropped: u64(n.RxDropped),
      txBytes: u64(n.TxBytes),
      txPackets: u64(n.TxPackets),
      txErrors: u64(n.TxErrors),
      txDropped: u64(n.TxDropped),
    };
  });
}

/**
 * runc's cgroup v2 numbers back into containerd's v2 Metrics: runc multiplied cpu.stat's
 * microseconds by 1000, added memory to swap (v1's memsw meaning), and split io.stat into
 * Read/Write entries of the v1 blkio lists.
 */
export function toV2Metrics(s: RuncStats, extras: CgroupExtras = {}): cgroup2.Metrics {
  const cpu = obj(s.cpu);
  const usage = obj(cpu.usage);
  const thr = obj(cpu.throttling);
  const mem = obj(s.memory);
  const raw = obj(mem.raw);
  const r = (k: string) => u64(raw[k]);
  const pids = obj(s.pids);
  const memUsage = obj(mem.usage);
  const swap = obj(mem.swap);
  const usageBytes = u64(memUsage.usage);
  const limit = u64(memUsage.limit);
  const swapTotal = u64(swap.usage);
  const swapLimit = u64(swap.limit);
  const io = new Map<string, cgroup2.IOEntry>();
  const ioEntry = (major: bigint, minor: bigint) => {
    const key = `${major}:${minor}`;
    let e = io.get(key);
    if (!e) {
      e = cgroup2.IOEntry.create({ major, minor });
      io.set(key, e);
    }
    return e;
  };
  const blkio = obj(s.blkio);
  for (const [list, read, write] of [
    [blkio.ioServiceBytesRecursive, "rbytes", "wbytes"],
    [blkio.ioServicedRecursive, "rios", "wios"],
  ] as const) {
    for (const x of arr(list)) {
      const e = obj(x);
      const target = ioEntry(u64(e.major), u64(e.minor));
      const op = typeof e.op === "string" ? e.op.toLowerCase() : "";
      if (op === "read") target[read] = u64(e.value);
      else if (op === "write") target[write] = u64(e.value);
    }
  }
  const ev = extras.memoryEvents;
  return cgroup2.Metrics.create({
    pids: { current: u64(pids.current), limit: u64(pids.limit) },
    cpu: {
      usageUsec: u64(usage.total) / 1000n,
      userUsec: u64(usage.user) / 1000n,
      systemUsec: u64(usage.kernel) / 1000n,
      nrPeriods: u64(thr.periods),
      nrThrottled: u64(thr.throttledPeriods),
      throttledUsec: u64(thr.throttledTime) / 1000n,
    },
    memory: {
      anon: r("anon"),
      file: r("file"),
      kernelStack: r("kernel_stack"),
      slab: r("slab"),
      sock: r("sock"),
      shmem: r("shmem"),
      fileMapped: r("file_mapped"),
      fileDirty: r("file_dirty"),
      fileWriteback: r("file_writeback"),
      anonThp: r("anon_thp"),
      inactiveAnon: r("inactive_anon"),
      activeAnon: r("active_anon"),
      inactiveFile: r("inactive_file"),
      activeFile: r("active_file"),
      unevictable: r("unevictable"),
      slabReclaimable: r("slab_reclaimable"),
      slabUnreclaimable: r("slab_unreclaimable"),
      pgfault: r("pgfault"),
      pgmajfault: r("pgmajfault"),
      workingsetRefault:
        r("workingset_refault") || r("workingset_refault_anon") + r("workingset_refault_file"),
      workingsetActivate:
        r("workingset_activate") || r("workingset_activate_anon") + r("workingset_activate_file"),
      workingsetNodereclaim: r("workingset_nodereclaim"),
      pgrefill: r("pgrefill"),
      pgscan: r("pgscan"),
      pgsteal: r("pgsteal"),
      pgactivate: r("pgactivate"),
      pgdeactivate: r("pgdeactivate"),
      pglazyfree: r("pglazyfree"),
      pglazyfreed: r("pglazyfreed"),
      thpFaultAlloc: r("thp_fault_alloc"),
      thpCollapseAlloc: r("thp_collapse_alloc"),
      usage: usageBytes,
      usageLimit: limit,
      swapUsage: swapTotal > usageBytes ? swapTotal - usageBytes : 0n,
      // An unlimited swap stays unlimited; a limit had the memory limit added to it.
      swapLimit: swapLimit >= U64_MAX || swapLimit < limit ? swapLimit : swapLimit - limit,
    },
    io: { usage: [...io.values()] },
    hugetlb: Object.entries(obj(s.hugetlb)).map(([pagesize, v]) => {
      const h = obj(v);
      return { pagesize, current: u64(h.usage), max: u64(h.max) };
    }),
    ...(ev
      ? {
          memoryEvents: {
            low: u64(ev.low),
            high: u64(ev.high),
            max: u64(ev.max),
            oom: u64(ev.oom),
            oomKill: u64(ev.oom_kill),
          },
        }
      : {}),
  });
}

/** "/dev/sda" for 8:0, from /sys/dev/block/8:0/uevent's DEVNAME (cached; "" when unknown). */
const deviceNames = new Map<string, string>();
export function blockDeviceName(major: bigint, minor: bigint): string {
  const key = `${major}:${minor}`;
  let name = deviceNames.get(key);
  if (name === undefined) {
    try {
      const m = /^DEVNAME=(.+)$/m.exec(readFileSync(`/sys/dev/block/${key}/uevent`, "utf8"));
      name = m ? `/dev/${m[1]}` : "";
    } catch {
      name = "";
    }
    deviceNames.set(key, name);
  }
  return name;
}

function readExtras(cgroup: MemoryCgroup | undefined): CgroupExtras {
  if (!cgroup) return {};
  try {
    if (cgroup.version === 1) {
      return { oomControl: parseFlatKeyed(readFileSync(join(cgroup.dir, "memory.oom_control"), "utf8")) };
    }
    return { memoryEvents: parseFlatKeyed(readFileSync(join(cgroup.dir, "memory.events"), "utf8")) };
  } catch {
    return {}; // removed meanwhile: runc's numbers stand alone
  }
}

/**
 * runc's numbers as the Metrics Any containerd expects: io.containerd.cgroups.v2.Metrics on a
 * unified host, else v1, with what the memory cgroup adds (memory.oom_control / memory.events).
 */
export function packMetrics(
  stats: RuncStats,
  cgroup: MemoryCgroup | undefined,
  unified = isUnifiedHost(),
): NonNullable<task.StatsResponse["stats"]> {
  const extras = readExtras(cgroup);
  return unified
    ? packAny(cgroup2.Metrics, toV2Metrics(stats, extras))
    : packAny(cgroup1.Metrics, toV1Metrics(stats, extras, blockDeviceName));
}
