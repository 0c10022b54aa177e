// Bundles the shim into one file (tsrunc-shim.js), puts the launcher (containerd-shim-tsrunc-v2)
// and the native addon beside it, and writes the V8 code cache the launcher compiles with.
// One file means one read and one compile at start-up instead of resolving hundreds of modules
// in node_modules; the code cache then skips most of that compile (measured by scripts/bench-shim:
// about 70 ms less per ctr run, over the three Node start-ups of a run).
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const pkg = join(root, "packages/shim-runc-v2");
const outDir = join(pkg, "dist/bin");
const launcher = join(outDir, "containerd-shim-tsrunc-v2");
const out = join(outDir, "tsrunc-shim.js");
// Every file is written beside its final name and renamed over it: shims started from dist/bin
// keep running while we rebuild, and overwriting a loaded native addon in place crashes them.
const tmp = (f) => `${f}.tmp-${process.pid}`;
mkdirSync(outDir, { recursive: true });

await build({
  entryPoints: [join(pkg, "dist/main.js")],
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  outfile: tmp(out),
  minify: true,
  keepNames: true,
  legalComments: "none",
  logLevel: "warning",
  // pino-pretty is an optional pretty-printer pino only requires when asked to.
  external: ["pino-pretty"],
});
renameSync(tmp(out), out);
copyFileSync(join(pkg, "src/launcher.cjs"), tmp(launcher));
chmodSync(tmp(launcher), 0o755);
renameSync(tmp(launcher), launcher);
// An extension-less script takes its module type from the nearest package.json; the package's
// is "module", but the bundle is CommonJS (installed copies have no package.json above them).
writeFileSync(join(outDir, "package.json"), '{ "type": "commonjs" }\n');

writeCodeCache(launcher);

const addon = join(root, "packages/native/build/Release/tsrunc_native.node");
if (existsSync(addon)) {
  copyFileSync(addon, tmp(join(outDir, "tsrunc_native.node")));
  renameSync(tmp(join(outDir, "tsrunc_native.node")), join(outDir, "tsrunc_native.node"));
} else throw new Error(`native addon missing: ${addon} (run npm run build:native -w @tsrunc/native)`);

/** Runs the launcher once in "warm" mode: it loads every module and saves V8's code cache. */
function writeCodeCache(launcherPath) {
  // The launcher itself writes the cache to a temporary name and renames it.
  // A clean environment: NODE_OPTIONS (tap, editors) would change V8's flags and so the cache.
  const r = spawnSync(process.execPath, [launcherPath], {
    env: { PATH: process.env.PATH, TSRUNC_WRITE_CODE_CACHE: "1", TSRUNC_WARM_ALL: "1" },
    stdio: "inherit",
  });
  // The launcher exits 0 only after it has renamed the new cache into place.
  if (r.status !== 0) throw new Error("writing the code cache failed");
}
