#!/usr/bin/env node
// Measures what importing a module costs a fresh Node process: wall time of the dynamic
// import() and the RSS delta across it, as the median of N fresh processes.
//
//   node scripts/measure-import.mjs [--runs N] [--preload SPEC] [--first-use] [--json] SPEC
//
// SPEC is a path to a module file (from the current directory) or a module specifier.
// --preload imports SPEC first, outside the measurement (e.g. protobufjs/light.js, which ttrpc
// loads anyway, to see the marginal cost). --first-use also times one encode and decode of a
// CreateTaskRequest after the import (only for modules exporting `task`). --json prints the
// raw samples instead of the medians.

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const args = process.argv.slice(2);
let runs = 10;
let preload = "";
let firstUse = false;
let json = false;
let spec = "";
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--runs") runs = Number(args[++i]);
  else if (a === "--preload") preload = args[++i];
  else if (a === "--first-use") firstUse = true;
  else if (a === "--json") json = true;
  else spec = a;
}
if (!spec) {
  console.error("usage: measure-import.mjs [--runs N] [--preload SPEC] [--first-use] SPEC");
  process.exit(2);
}
// A path when such a file exists (resolved from the current directory), else a specifier.
const resolveSpec = (s) => (fs.existsSync(s) ? pathToFileURL(path.resolve(s)).href : s);

const probe = `
${preload ? `await import(${JSON.stringify(resolveSpec(preload))});` : ""}
const r0 = process.memoryUsage().rss;
const c0 = process.cpuUsage();
const t0 = performance.now();
const m = await import(${JSON.stringify(resolveSpec(spec))});
const t1 = performance.now();
const c1 = process.cpuUsage(c0);
const r1 = process.memoryUsage().rss;
let use = -1;
if (${firstUse} && m.task) {
  const u0 = performance.now();
  const b = m.task.CreateTaskRequest.encode({ id: "c", bundle: "/b", rootfs: [{ type: "overlay", source: "overlay" }] });
  m.task.CreateTaskRequest.decode(b);
  use = performance.now() - u0;
}
process.stdout.write(JSON.stringify({ ms: t1 - t0, cpu: (c1.user + c1.system) / 1000, rss: r1 - r0, use }));
`;

const samples = [];
for (let i = 0; i < runs; i++) {
  let out;
  try {
    out = execFileSync(process.execPath, ["--input-type=module", "-e", probe], {
      encoding: "utf8",
      stdio: "pipe",
    });
  } catch (err) {
    console.error(err.stderr || err.message);
    process.exit(1);
  }
  samples.push(JSON.parse(out));
}
if (json) {
  console.log(JSON.stringify(samples));
  process.exit(0);
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const ms = median(samples.map((s) => s.ms));
const cpu = median(samples.map((s) => s.cpu));
const rss = median(samples.map((s) => s.rss)) / 1048576;
const use = median(samples.map((s) => s.use));
const useText = use < 0 ? "n/a (no task export)" : `${use.toFixed(2)} ms`;
console.log(
  `${spec}${preload ? ` (after ${preload})` : ""}: import ${ms.toFixed(2)} ms (CPU ${cpu.toFixed(2)} ms), RSS +${rss.toFixed(2)} MiB` +
    (firstUse ? `, first encode+decode ${useText}` : "") +
    ` (median of ${runs} fresh processes, node ${process.version})`,
);
