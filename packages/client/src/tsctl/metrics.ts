// tsctl tasks metrics ID: the task's cgroup metrics, as the few lines ctr prints (cgroup v1 or
// v2), or everything decoded with --format json.

import { cgroup1, cgroup2, isAnyOf, unpackAny, unpackAnyAs } from "@tsrunc/protocol";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import type { Metric } from "../client.js";
import { timestampJson, toPlain } from "../json.js";
import { formatTable } from "./output.js";

/** METRIC/VALUE rows for one sample (empty when its type is neither cgroup v1 nor v2). */
export function metricRows(m: Metric): string[][] {
  const n = (v: bigint | undefined) => String(v ?? 0n);
  if (isAnyOf(m.data, cgroup1.Metrics)) {
    const d = unpackAnyAs(m.data!, cgroup1.Metrics);
    return [
      ["memory.usage_in_bytes", n(d.memory?.usage?.usage)],
      ["memory.limit_in_bytes", n(d.memory?.usage?.limit)],
      ["memory.stat.cache", n(d.memory?.cache)],
      ["cpuacct.usage", n(d.cpu?.usage?.total)],
      ["cpuacct.usage_percpu", `[${(d.cpu?.usage?.perCpu ?? []).join(" ")}]`],
      ["pids.current", n(d.pids?.current)],
      ["pids.limit", n(d.pids?.limit)],
    ];
  }
  if (isAnyOf(m.data, cgroup2.Metrics)) {
    const d = unpackAnyAs(m.data!, cgroup2.Metrics);
    return [
      ["pids.current", n(d.pids?.current)],
      ["pids.limit", n(d.pids?.limit)],
      ["cpu.usage_usec", n(d.cpu?.usageUsec)],
      ["cpu.user_usec", n(d.cpu?.userUsec)],
      ["cpu.system_usec", n(d.cpu?.systemUsec)],
      ["cpu.nr_periods", n(d.cpu?.nrPeriods)],
      ["cpu.nr_throttled", n(d.cpu?.nrThrottled)],
      ["cpu.throttled_usec", n(d.cpu?.throttledUsec)],
      ["memory.usage", n(d.memory?.usage)],
      ["memory.usage_limit", n(d.memory?.usageLimit)],
      ["memory.swap_usage", n(d.memory?.swapUsage)],
      ["memory.swap_limit", n(d.memory?.swapLimit)],
    ];
  }
  return [];
}

export function formatMetrics(id: string, metrics: readonly Metric[]): string {
  if (metrics.length === 0) throw new TtrpcError(Code.NotFound, `no metrics for task ${id}`);
  const parts: string[] = [];
  for (const m of metrics) {
    parts.push(formatTable(["ID", "TIMESTAMP"], [[m.id || id, timestampJson(m.timestamp) ?? "-"]]));
    const rows = metricRows(m);
    parts.push(
      rows.length > 0
        ? formatTable(["METRIC", "VALUE"], rows)
        : `(metrics of type ${m.data?.typeUrl ?? "none"}: use --format json)`,
    );
  }
  return `${parts.join("\n\n")}\n`;
}

export function metricsJson(metrics: readonly Metric[]): unknown[] {
  return metrics.map((m) => {
    let data: unknown = null;
    if (m.data != null) {
      try {
        data = toPlain(unpackAny(m.data));
      } catch {
        data = toPlain(m.data.value);
      }
    }
    return { id: m.id, timestamp: timestampJson(m.timestamp), type: m.data?.typeUrl, data };
  });
}
