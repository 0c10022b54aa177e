import { cgroup1, cgroup2, unpackAnyAs } from "@tsrunc/protocol/shim";
import t from "tap";
import type { RuncStats } from "../runc/index.js";
import { packMetrics, toV1Metrics, toV2Metrics, u64 } from "./stats.js";

// `runc events --stats` of a busy busybox shell on this host (runc 1.1.5, cgroup v1), shortened.
const V1: RuncStats = JSON.parse(
  '{"cpu":{"usage":{"total":79232535,"percpu":[966940,78265595],"percpu_kernel":[4000000,4000000],' +
    '"percpu_user":[0,84000000],"kernel":0,"user":70000000},"throttling":{"periods":10,"throttledPeriods":3,' +
    '"throttledTime":123456}},"memory":{"usage":{"limit":9223372036854771712,"usage":483328,"max":2514944,' +
    '"failcnt":0},"swap":{"limit":9223372036854771712,"usage":483328,"max":2514944,"failcnt":0},"kernel":' +
    '{"limit":9223372036854771712,"usage":253952,"max":602112,"failcnt":0},"kernelTCP":{"limit":' +
    '9223372036854771712,"failcnt":0},"raw":{"active_anon":4096,"cache":8192,"hierarchical_memory_limit":' +
    '9223372036854771712,"hierarchical_memsw_limit":9223372036854771712,"inactive_anon":57344,"pgfault":778,' +
    '"pgpgin":472,"rss":61440,"total_cache":8192,"total_pgfault":778,"total_rss":61440}},"pids":{"current":1},' +
    '"blkio":{"ioServiceBytesRecursive":[{"major":8,"minor":0,"op":"Read","value":4096},{"major":8,"minor":0,' +
    '"op":"Write","value":512}],"ioQueueRecursive":[{"major":8,"minor":0,"op":"Total"}]},"hugetlb":{"2MB":' +
    '{"failcnt":0}},"intel_rdt":{},"network_interfaces":null}',
);

t.test("u64: clamps and truncates", async (t) => {
  t.equal(u64(undefined), 0n);
  t.equal(u64(-5), 0n);
  t.equal(u64(1.9), 1n);
  t.equal(u64(2 ** 63 - 4096), 9223372036854771712n, "v1's unlimited is exact");
  t.equal(u64(JSON.parse("18446744073709551615")), (1n << 64n) - 1n, "MaxUint64 parses to 2^64: clamped");
  t.equal(u64(Number.NaN), 0n);
});

t.test("v1 metrics from runc's stats", async (t) => {
  const m = toV1Metrics(V1, { oomControl: { oom_kill_disable: 0, under_oom: 0, oom_kill: 2 } }, (ma, mi) =>
    ma === 8n && mi === 0n ? "/dev/sda" : "",
  );
  t.same(m.cpu?.usage, { total: 79232535n, kernel: 0n, user: 70000000n, perCpu: [966940n, 78265595n] });
  t.same(m.cpu?.throttling, { periods: 10n, throttledPeriods: 3n, throttledTime: 123456n });
  t.same(m.memory?.usage, { limit: 9223372036854771712n, usage: 483328n, max: 2514944n, failcnt: 0n });
  t.equal(m.memory?.kernel?.usage, 253952n);
  t.equal(m.memory?.kernelTcp?.limit, 9223372036854771712n);
  t.equal(m.memory?.cache, 8192n);
  t.equal(m.memory?.rss, 61440n);
  t.equal(m.memory?.pgPgIn, 472n);
  t.equal(m.memory?.pgFault, 778n);
  t.equal(m.memory?.totalRss, 61440n);
  t.equal(m.memory?.hierarchicalSwapLimit, 9223372036854771712n);
  t.same(m.pids, { current: 1n, limit: 0n });
  t.same(m.blkio?.ioServiceBytesRecursive, [
    { op: "Read", device: "/dev/sda", major: 8n, minor: 0n, value: 4096n },
    { op: "Write", device: "/dev/sda", major: 8n, minor: 0n, value: 512n },
  ]);
  t.same(m.blkio?.ioQueuedRecursive, [{ op: "Total", device: "/dev/sda", major: 8n, minor: 0n, value: 0n }]);
  t.same(m.hugetlb, [{ pagesize: "2MB", usage: 0n, max: 0n, failcnt: 0n }]);
  t.same(m.network, []);
  t.same(m.memoryOomControl, { oomKillDisable: 0n, underOom: 0n, oomKill: 2n });
  // What containerd decodes is what we built.
  const round = cgroup1.Metrics.decode(cgroup1.Metrics.encode(m));
  t.same(round, m);
});

t.test("v1 metrics of an empty answer are zeros, not a crash", async (t) => {
  const m = toV1Metrics({});
  t.equal(m.cpu?.usage?.total, 0n);
  t.equal(m.memoryOomControl, undefined, "no oom_control read: field left out");
});

t.test("v2 metrics: microseconds, swap without memory, io by device", async (t) => {
  const s: RuncStats = {
    cpu: {
      usage: { total: 5_000_000, user: 3_000_000, kernel: 2_000_000 },
      throttling: { periods: 7, throttledPeriods: 2, throttledTime: 9000 } as never,
    },
    memory: {
      usage: { usage: 1000, limit: 4000 },
      swap: { usage: 1500, limit: 6000 },
      raw: { anon: 600, file: 300, pgfault: 9, workingset_refault_anon: 1, workingset_refault_file: 2 },
    },
    pids: { current: 3, limit: 100 },
    blkio: {
      ioServiceBytesRecursive: [
        { major: 254, minor: 0, op: "Read", value: 10 },
        { major: 254, minor: 0, op: "Write", value: 20 },
      ],
      ioServicedRecursive: [
        { major: 254, minor: 0, op: "Read", value: 1 },
        { major: 254, minor: 0, op: "Write", value: 2 },
      ],
    },
    hugetlb: { "1GB": { usage: 0, max: 0, failcnt: 0 } },
  };
  const m = toV2Metrics(s, { memoryEvents: { low: 0, high: 1, max: 2, oom: 3, oom_kill: 1 } });
  t.same(m.cpu, {
    usageUsec: 5000n,
    userUsec: 3000n,
    systemUsec: 2000n,
    nrPeriods: 7n,
    nrThrottled: 2n,
    throttledUsec: 9n,
  });
  t.equal(m.memory?.usage, 1000n);
  t.equal(m.memory?.usageLimit, 4000n);
  t.equal(m.memory?.swapUsage, 500n);
  t.equal(m.memory?.swapLimit, 2000n);
  t.equal(m.memory?.anon, 600n);
  t.equal(m.memory?.workingsetRefault, 3n);
  t.same(m.pids, { current: 3n, limit: 100n });
  t.same(m.io?.usage, [{ major: 254n, minor: 0n, rbytes: 10n, wbytes: 20n, rios: 1n, wios: 2n }]);
  t.same(m.hugetlb, [{ pagesize: "1GB", current: 0n, max: 0n }]);
  t.same(m.memoryEvents, { low: 0n, high: 1n, max: 2n, oom: 3n, oomKill: 1n });
  const unlimited = toV2Metrics({
    memory: {
      usage: { usage: 1, limit: 2 ** 64 },
      swap: { usage: 1, limit: 2 ** 64 },
    },
  });
  t.equal(unlimited.memory?.usageLimit, (1n << 64n) - 1n);
  t.equal(unlimited.memory?.swapLimit, (1n << 64n) - 1n, "unlimited swap stays unlimited");
});

// Which states may ask for stats, and runc's errors: task-service.test.ts (the Task service with a fake runc).
t.test("packMetrics packs v1 or v2 Metrics", async (t) => {
  const v1 = packMetrics(V1, undefined, false);
  t.equal(v1.typeUrl, "io.containerd.cgroups.v1.Metrics");
  t.equal(unpackAnyAs(v1, cgroup1.Metrics).pids?.current, 1n);
  const v2 = packMetrics(V1, undefined, true);
  t.equal(v2.typeUrl, "io.containerd.cgroups.v2.Metrics");
  t.equal(unpackAnyAs(v2, cgroup2.Metrics).cpu?.usageUsec, 79232n);
});
