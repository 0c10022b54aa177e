// Bundles the shim into one file with a node shebang, and puts the native addon beside it.
// One file means one read and one compile at start-up instead of resolving hundreds of modules
// in node_modules: the shim's start latency is what `ctr run` waits for.
import { chmodSync, copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const pkg = join(root, "packages/shim-runc-v2");
const outDir = join(pkg, "dist/bin");
const out = join(outDir, "containerd-shim-tsrunc-v2");
mkdirSync(outDir, { recursive: true });

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
  // pino-pretty is an optional pretty-printer pino only requires when asked to.
  external: ["pino-pretty"],
});
chmodSync(out, 0o755);
// An extension-less script takes its module type from the nearest package.json; the package's
// is "module", but the bundle is CommonJS (installed copies have no package.json above them).
writeFileSync(join(outDir, "package.json"), '{ "type": "commonjs" }\n');

const addon = join(pkg, "native/build/Release/tsrunc_native.node");
if (existsSync(addon)) copyFileSync(addon, join(outDir, "tsrunc_native.node"));
else throw new Error(`native addon missing: ${addon} (run npm run build:native -w @tsrunc/shim-runc-v2)`);
