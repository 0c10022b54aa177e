// What tsctl prints: aligned tables (like ctr's tabwriter output) and JSON.

/** Columns separated by at least two spaces; the last column is not padded. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...all.map((r) => (r[c] ?? "").length)));
  return all
    .map((r) =>
      r
        .map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd((widths[c] ?? 0) + 2)))
        .join("")
        .trimEnd(),
    )
    .join("\n");
}

export function printTable(header: readonly string[], rows: readonly (readonly string[])[]): void {
  process.stdout.write(`${formatTable(header, rows)}\n`);
}

/** One JSON document on stdout (indented when `pretty`). */
export function printJson(value: unknown, pretty = false): void {
  process.stdout.write(`${JSON.stringify(value, null, pretty ? 2 : undefined)}\n`);
}

/** Bytes as people read them: 512 B, 1.5 KiB, 200.0 MiB (binary units, as ctr prints sizes). */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}
