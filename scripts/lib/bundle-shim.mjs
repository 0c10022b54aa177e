// Bundles the shim into one file (tsrunc-shim.js), puts the launcher (containerd-shim-tsrunc-v2)
// and the native addon beside it, and writes the V8 code cache the launcher compiles with.
// One file means one read and one compile at start-up instead of resolving hundreds of modules
// in node_modules; the code cache then skips most of that compile (measured by scripts/bench-shim:
// about 70 ms less per ctr run, over the three Node start-ups of a run).
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const pkg = join(root, "packages/shim-runc-v2");
const outDir = join(pkg, "dist/bin");
const launcher = join(outDir, "containerd-shim-tsrunc-v2");
const out = join(outDir, "tsrunc-shim.js");
mkdirSync(outDir, { recursive: true });

await build({
  entryPoints: [join(pkg, "dist/main.js")],
  bundle: true,
  platform: "node",
  target: "node20",
  format: "cjs",
  outfile: out,
  minify: true,
  keepNames: true,
  legalComments: "none",
  logLevel: "warning",
  // pino-pretty is an optional pretty-printer pino only requires when asked to.
  external: ["pino-pretty"],
});
copyFileSync(join(pkg, "src/launcher.cjs"), launcher);
chmodSync(launcher, 0o755);
// An extension-less script takes its module type from the nearest package.json; the package's
// is "module", but the bundle is CommonJS (installed copies have no package.json above them).
writeFileSync(join(outDir, "package.json"), '{ "type": "commonjs" }\n');

writeCodeCache(launcher);

const addon = join(pkg, "native/build/Release/tsrunc_native.node");
if (existsSync(addon)) copyFileSync(addon, join(outDir, "tsrunc_native.node"));
else throw new Error(`native addon missing: ${addon} (run npm run build:native -w @tsrunc/shim-runc-v2)`);

/** Runs the launcher once in "warm" mode: it loads every module and saves V8's code cache. */
function writeCodeCache(launcherPath) {
  rmSync(join(outDir, "tsrunc-shim.cache"), { force: true });
  // A clean environment: NODE_OPTIONS (tap, editors) would change V8's flags and so the cache.
  const r = spawnSync(process.execPath, [launcherPath], {
    env: { PATH: process.env.PATH, TSRUNC_WRITE_CODE_CACHE: "1", TSRUNC_WARM_ALL: "1" },
    stdio: "inherit",
  });
  if (r.status !== 0 || !existsSync(join(outDir, "tsrunc-shim.cache")))
    throw new Error("writing the code cache failed");
}
