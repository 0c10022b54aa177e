// Bundles the shim into one file (tsrunc-shim.js), puts the launcher (containerd-shim-tsrunc-v2)
// and the native addon beside it, and writes the V8 code cache the launcher compiles with.
// One file means one read and one compile at start-up instead of resolving hundreds of modules
// in node_modules; the code cache then skips most of that compile (measured by scripts/bench-shim:
// about 70 ms less per ctr run, over the three Node start-ups of a run).
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { nodeBundle } from "./esbuild-node.mjs";

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
  ...nodeBundle,
  entryPoints: [join(pkg, "dist/main.js")],
  outfile: tmp(out),
  keepNames: true,
  // pino-pretty is an optional pretty-printer pino only requires when asked to.
  external: ["pino-pretty"],
});
renameSync(tmp(out), out);
// `start` alone, embedded in the launcher (see launcherSource).
const startBuild = await build({
  ...nodeBundle,
  entryPoints: [join(pkg, "dist/cli/start-main.js")],
  write: false,
  keepNames: true,
});
const startCode = startBuild.outputFiles[0].text;
// The same `start` bundle as a file of its own, for the single-file executable (build-sea.mjs).
const startFile = join(pkg, "dist/sea-inputs/start.js");
mkdirSync(dirname(startFile), { recursive: true });
writeFileSync(tmp(startFile), startCode);
renameSync(tmp(startFile), startFile);
writeFileSync(tmp(launcher), launcherSource());
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

/**
 * The launcher: one file that is both a POSIX sh script (src/launcher.sh: the post-exit `delete`
 * answered without Node, Node's knobs dropped, then `exec node "$0"`) and the Node launcher
 * (src/launcher.cjs). sh reads `":"` (the no-op builtin, with `/*` as ignored arguments), runs the
 * script and execs Node before it reaches the closing `*\/`; Node strips the shebang and sees a
 * string and a comment.
 */
function launcherSource() {
  const sh = readFileSync(join(pkg, "src/launcher.sh"), "utf8").replace(/^#!.*\n/, "");
  const js = readFileSync(join(pkg, "src/launcher.cjs"), "utf8").replace(/^#!.*\n/, "");
  if (sh.includes("*/")) throw new Error("src/launcher.sh must not contain */ (it ends the JS comment)");
  if (!/\nexec node "\$0" "\$@"\n$/.test(sh))
    throw new Error('src/launcher.sh must end with exec node "$0" "$@"');
  const placeholder = "const startBundle = undefined;";
  if (!js.includes(placeholder)) throw new Error(`src/launcher.cjs lacks ${placeholder}`);
  // The start verb's own bundle, as a function returning its exports (see cli/start-main.ts).
  const code = startCode.replace(/^#!.*\n/, "");
  const fn = `function () { const module = { exports: {} }; (function (exports, module) {\n${code}\n})(module.exports, module); return module.exports; }`;
  return `#!/bin/sh\n":" /*\n${sh}*/\n${js.replace(placeholder, () => `const startBundle = ${fn};`)}`;
}

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
