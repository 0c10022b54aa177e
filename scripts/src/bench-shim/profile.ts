// Where our shim's CPU time goes: V8 CPU profiles (.cpuprofile) of the shim's `start`, `serve`
// and `delete` processes, self time summed per source file and per package through the bundle's
// source map.
//
// scripts/bench-shim --profile DIR builds a profiling copy of the bundle (the options of
// scripts/lib/bundle-shim.mjs plus a source map) into DIR/bin, runs it under containerd with
// cpuprof.cjs preloaded, and calls summarize(). By hand (after scripts/bench-shim built it):
//   node scripts/dist/scripts/src/bench-shim/profile.js DIR [--top N] [--json]

import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { SourceMap } from "node:module";
import { basename, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { repo, TS_NAME } from "./paths.js";

export interface ShimFiles {
  shim: string;
  addon: string;
  map?: string;
}

/**
 * The shim bundle as scripts/lib/bundle-shim.mjs builds it (keep these options in step), plus a
 * source map, into DIR/bin. Built from packages/shim-runc-v2/dist (run `npm run build` first).
 */
export async function buildProfilingBundle(dir: string): Promise<ShimFiles> {
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
  copyFileSync(
    join(repo, "packages/native/build/Release/tsrunc_native.node"),
    join(bin, "tsrunc_native.node"),
  );
  return { shim: out, addon: join(bin, "tsrunc_native.node"), map: `${out}.map` };
}

/** What this module reads of a .cpuprofile. */
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

export interface Entry {
  what: string;
  ms: number;
}

export type ProcessKind = "start" | "serve" | "delete" | "other";

export interface ProfileSummary {
  file: string;
  kind: ProcessKind;
  wallMs: number;
  sampledMs: number;
  busyMs: number;
  byPackage: Entry[];
  bySource: Entry[];
}

/** "node_modules/pino/lib/tools.js" → "pino"; "../packages/ttrpc/dist/x.js" → "@tsrunc/ttrpc". */
function packageOf(source: string): string {
  const nm = source.lastIndexOf("node_modules/");
  if (nm >= 0) {
    const [scope = "", name = ""] = source.slice(nm + "node_modules/".length).split("/");
    return scope.startsWith("@") ? `${scope}/${name}` : scope;
  }
  const m = /packages\/([^/]+)\//.exec(source);
  return m ? `@tsrunc/${m[1]}` : source;
}

function shortSource(source: string): string {
  const nm = source.lastIndexOf("node_modules/");
  if (nm >= 0) return source.slice(nm);
  const p = source.indexOf("packages/");
  return p >= 0 ? source.slice(p) : source;
}

/** Self time (ms) per category of one .cpuprofile; bundle frames are mapped to their sources. */
export function analyzeProfile(file: string, sourceMap?: SourceMap): ProfileSummary {
  const prof = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const node = (id: number): ProfileNode => {
    const n = byId.get(id);
    if (!n) throw new Error(`${file}: no node ${id}`);
    return n;
  };
  const selfUs = new Map<number, number>();
  prof.samples.forEach((id, i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0));
  });
  const bySource = new Map<string, number>();
  const byPackage = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, us: number) => m.set(k, (m.get(k) ?? 0) + us / 1000);
  const mapped = new Map<number, string>();
  /** The source file of a bundle frame; esbuild's helpers (__esm/__commonJS wrappers, whose self
   * time is mostly the lazy compile of the module body they call) take their callee's file. */
  const sourceOf = (n: ProfileNode, depth = 0): string => {
    const known = mapped.get(n.id);
    if (known !== undefined) return known;
    const f = n.callFrame;
    let source: string;
    if (!f.url) source = f.functionName === "dispatch" ? "(profiler)" : `(native) ${f.functionName}`;
    else if (f.url.startsWith("node:"))
      source = f.url.replace(/^node:internal\/([^/]+).*/, "node:internal/$1");
    else if (basename(f.url) === TS_NAME && sourceMap) {
      const e = sourceMap.findEntry(f.lineNumber, f.columnNumber) as { originalSource?: string };
      if (e.originalSource) source = shortSource(e.originalSource);
      else if (f.lineNumber === 0) source = "bundle top level";
      else {
        source = "bundle (esbuild helpers)";
        for (const c of depth < 8 ? (n.children ?? []) : []) {
          const s = sourceOf(node(c), depth + 1);
          if (!s.startsWith("(") && !s.startsWith("bundle") && !s.startsWith("node:")) {
            source = s;
            break;
          }
        }
      }
    } else source = f.url;
    mapped.set(n.id, source);
    return source;
  };
  const all = [...selfUs.keys()].map((id) => sourceOf(node(id)));
  // The verb from the file name (cpuprof.cts), else from the code that ran.
  const named = /\.(start|serve|delete)\.cpuprofile$/.exec(file)?.[1] as ProcessKind | undefined;
  const ran = (verb: string) => all.some((s) => new RegExp(`cli/${verb}\\.(js|ts)$`).test(s));
  const kind: ProcessKind =
    named ?? (ran("serve") ? "serve" : ran("delete") ? "delete" : ran("start") ? "start" : "other");
  for (const [id, us] of selfUs) {
    const source = sourceOf(node(id));
    add(bySource, source, us);
    add(byPackage, /^[(]|^node:|^bundle/.test(source) ? source : packageOf(source), us);
  }
  const sorted = (m: Map<string, number>): Entry[] =>
    [...m].sort((a, b) => b[1] - a[1]).map(([k, v]) => ({ what: k, ms: +v.toFixed(2) }));
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
export function summarize(dir: string): ProfileSummary[] {
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
export function formatSummary(profiles: readonly ProfileSummary[], top = 12): string {
  const lines: string[] = [];
  const med = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.floor((s.length - 1) / 2)] ?? 0;
  };
  for (const kind of ["start", "serve", "delete", "other"] as const) {
    const ps = profiles.filter((p) => p.kind === kind);
    if (ps.length === 0) continue;
    lines.push(
      `  ${kind}: ${ps.length} profile(s); median busy ${med(ps.map((p) => p.busyMs)).toFixed(0)} ms (samples not idle, not the profiler), self time by package (ms):`,
    );
    for (const key of ["byPackage", "bySource"] as const) {
      const names = new Set(ps.flatMap((p) => p[key].map((e) => e.what)));
      const rows = [...names]
        .map((n): [string, number] => [n, med(ps.map((p) => p[key].find((e) => e.what === n)?.ms ?? 0))])
        .sort((a, b) => b[1] - a[1])
        .slice(0, top);
      if (key === "bySource") lines.push(`    top source files (median ms):`);
      for (const [n, v] of rows) lines.push(`    ${v.toFixed(1).padStart(7)}  ${n}`);
    }
  }
  return lines.join("\n");
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { top: { type: "string", default: "12" }, json: { type: "boolean", default: false } },
  });
  const dir = positionals[0];
  if (!dir) {
    process.stderr.write(
      "usage: node scripts/dist/scripts/src/bench-shim/profile.js DIR [--top N] [--json]\n",
    );
    process.exit(2);
  }
  const profiles = summarize(dir);
  if (values.json) process.stdout.write(`${JSON.stringify(profiles, null, 2)}\n`);
  else process.stdout.write(`${formatSummary(profiles, Number(values.top))}\n`);
}
