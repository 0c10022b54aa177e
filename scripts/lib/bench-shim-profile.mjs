// Where our shim's CPU time goes: V8 CPU profiles (.cpuprofile, from `node --cpu-prof`) of the
// shim's `start` and `serve` processes, self time summed per source file and per package through
// the bundle's source map.
//
// scripts/bench-shim --profile DIR builds a profiling copy of the bundle (the options of
// scripts/lib/bundle-shim.mjs plus a source map) into DIR/bin, runs it under containerd with
// NODE_OPTIONS=--cpu-prof, and calls summarize(). By hand:
//   node scripts/lib/bench-shim-profile.mjs DIR [--top N] [--json]

import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { SourceMap } from "node:module";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const TS_NAME = "containerd-shim-tsrunc-v2";

/**
 * The shim bundle as scripts/lib/bundle-shim.mjs builds it (keep these options in step), plus a
 * source map, into DIR/bin. Built from packages/shim-runc-v2/dist (run `npm run build` first).
 */
export async function buildProfilingBundle(dir) {
  const { build } = await import("esbuild");
  const pkg = join(repo, "packages/shim-runc-v2");
  const bin = join(resolve(dir), "bin");
  mkdirSync(bin, { recursive: true });
  const out = join(bin, TS_NAME);
  await build({
    entryPoints: [join(pkg, "dist/main.js")],
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    outfile: out,
    banner: { js: "#!/usr/bin/env node" },
    minify: true,
    keepNames: true,
    legalComments: "none",
    logLevel: "warning",
    external: ["pino-pretty"],
    sourcemap: true,
    sourceRoot: repo,
  });
  writeFileSync(join(bin, "package.json"), '{ "type": "commonjs" }\n');
  copyFileSync(join(pkg, "native/build/Release/tsrunc_native.node"), join(bin, "tsrunc_native.node"));
  return { shim: out, addon: join(bin, "tsrunc_native.node"), map: `${out}.map` };
}

/** "node_modules/pino/lib/tools.js" → "pino"; "../packages/ttrpc/dist/x.js" → "@tsrunc/ttrpc". */
function packageOf(source) {
  const nm = source.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const parts = source.slice(nm + "node_modules/".length).split("/");
    return parts[0].startsWith("@") ? `${parts[0]}/${parts[1]}` : parts[0];
  }
  const m = /packages\/([^/]+)\//.exec(source);
  return m ? `@tsrunc/${m[1]}` : source;
}

function shortSource(source) {
  const nm = source.lastIndexOf("node_modules/");
  if (nm >= 0) return source.slice(nm);
  const p = source.indexOf("packages/");
  return p >= 0 ? source.slice(p) : source;
}

/** Self time (ms) per category of one .cpuprofile; bundle frames are mapped to their sources. */
export function analyzeProfile(file, sourceMap) {
  const prof = JSON.parse(readFileSync(file, "utf8"));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  for (let i = 0; i < prof.samples.length; i++) {
    const id = prof.samples[i];
    selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
  }
  const bySource = new Map();
  const byPackage = new Map();
  const add = (m, k, us) => m.set(k, (m.get(k) ?? 0) + us / 1000);
  const mapped = new Map();
  /** The source file of a bundle frame; esbuild's helpers (__esm/__commonJS wrappers, whose self
   * time is mostly the lazy compile of the module body they call) take their callee's file. */
  const sourceOf = (node, depth = 0) => {
    if (mapped.has(node.id)) return mapped.get(node.id);
    const f = node.callFrame;
    let source;
    if (!f.url) source = f.functionName === "dispatch" ? "(profiler)" : `(native) ${f.functionName}`;
    else if (f.url.startsWith("node:"))
      source = f.url.replace(/^node:internal\/([^/]+).*/, "node:internal/$1");
    else if (basename(f.url) === TS_NAME && sourceMap) {
      const e = sourceMap.findEntry(f.lineNumber, f.columnNumber);
      if (e?.originalSource) source = shortSource(e.originalSource);
      else if (f.lineNumber === 0) source = "bundle top level";
      else {
        source = "bundle (esbuild helpers)";
        for (const c of depth < 8 ? (node.children ?? []) : []) {
          const s = sourceOf(byId.get(c), depth + 1);
          if (!s.startsWith("(") && !s.startsWith("bundle") && !s.startsWith("node:")) {
            source = s;
            break;
          }
        }
      }
    } else source = f.url;
    mapped.set(node.id, source);
    return source;
  };
  const all = [...selfUs.keys()].map((id) => sourceOf(byId.get(id)));
  // The verb from the file name (bench-shim-cpuprof.cjs), else from the code that ran.
  const named = /\.(start|serve|delete)\.cpuprofile$/.exec(file)?.[1];
  const kind = named
    ? named
    : all.some((s) => /cli\/serve\.(js|ts)$/.test(s))
      ? "serve"
      : all.some((s) => /cli\/delete\.(js|ts)$/.test(s))
        ? "delete"
        : all.some((s) => /cli\/start\.(js|ts)$/.test(s))
          ? "start"
          : "other";
  for (const [id, us] of selfUs) {
    const source = sourceOf(byId.get(id));
    add(bySource, source, us);
    add(byPackage, /^[(]|^node:|^bundle/.test(source) ? source : packageOf(source), us);
  }
  const sorted = (m) => [...m].sort((a, b) => b[1] - a[1]).map(([k, v]) => ({ what: k, ms: +v.toFixed(2) }));
  return {
    file: basename(file),
    kind,
    wallMs: +((prof.endTime - prof.startTime) / 1000).toFixed(1),
    sampledMs: +([...selfUs.values()].reduce((a, b) => a + b, 0) / 1000).toFixed(1),
    busyMs: +[...bySource]
      .filter(([k]) => k !== "(native) (idle)" && k !== "(profiler)")
      .reduce((a, [, v]) => a + v, 0)
      .toFixed(1),
    byPackage: sorted(byPackage),
    bySource: sorted(bySource),
  };
}

/** Every .cpuprofile in dir, analyzed; the source map is DIR/bin/<shim>.map when it exists. */
export function summarize(dir) {
  const mapFile = join(dir, "bin", `${TS_NAME}.map`);
  const sourceMap = existsSync(mapFile)
    ? new SourceMap(JSON.parse(readFileSync(mapFile, "utf8")))
    : undefined;
  return readdirSync(dir)
    .filter((f) => f.endsWith(".cpuprofile"))
    .sort()
    .map((f) => analyzeProfile(join(dir, f), sourceMap));
}

/** Readable lines: per process kind, the median of each package's self time over the profiles. */
export function formatSummary(profiles, top = 12) {
  const lines = [];
  for (const kind of ["start", "serve", "delete", "other"]) {
    const ps = profiles.filter((p) => p.kind === kind);
    if (ps.length === 0) continue;
    const med = (xs) => {
      const s = [...xs].sort((a, b) => a - b);
      return s[Math.floor((s.length - 1) / 2)] ?? 0;
    };
    lines.push(
      `  ${kind}: ${ps.length} profile(s); median busy ${med(ps.map((p) => p.busyMs)).toFixed(0)} ms (samples not idle, not the profiler), self time by package (ms):`,
    );
    for (const key of ["byPackage", "bySource"]) {
      const names = new Set(ps.flatMap((p) => p[key].map((e) => e.what)));
      const rows = [...names]
        .map((n) => [n, med(ps.map((p) => p[key].find((e) => e.what === n)?.ms ?? 0))])
        .sort((a, b) => b[1] - a[1])
        .slice(0, top);
      if (key === "bySource") lines.push(`    top source files (median ms):`);
      for (const [n, v] of rows) lines.push(`    ${v.toFixed(1).padStart(7)}  ${n}`);
    }
  }
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: "string", default: "12" }, json: { type: "boolean", default: false } },
  });
  const dir = positionals[0];
  if (!dir) {
    process.stderr.write("usage: node scripts/lib/bench-shim-profile.mjs DIR [--top N] [--json]\n");
    process.exit(2);
  }
  const profiles = summarize(dir);
  if (values.json) process.stdout.write(`${JSON.stringify(profiles, null, 2)}\n`);
  else process.stdout.write(`${formatSummary(profiles, Number(values.top))}\n`);
}
