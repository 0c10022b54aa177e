// Bundles tsruncd and tsctl like the shim (see bundle-shim.mjs): one CommonJS file each, a
// launcher named after the command, and a V8 code cache written by running the command once
// with --help. tsruncd's bundle gets better-sqlite3's native addon and ours (tsrunc_native.node,
// for SO_PEERCRED; found beside the bundle, see @tsrunc/native's addon.ts) beside it.
//   packages/daemon/dist/bin/{tsruncd, tsruncd.bundle.js, tsruncd.cache, better_sqlite3.node,
//                             tsrunc_native.node}
//   packages/client/dist/bin/{tsctl, tsctl.bundle.js, tsctl.cache}
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
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { nodeBundle } from "./esbuild-node.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const tmp = (f) => `${f}.tmp-${process.pid}`;
const place = (from, to, mode) => {
  copyFileSync(from, tmp(to));
  if (mode) chmodSync(tmp(to), mode);
  renameSync(tmp(to), to);
};

// nodeFlags go into the launcher's shebang (`env -S`) and into the run that writes the code
// cache: V8 rejects a cache made under other flags. tsruncd's young generation is capped at
// 1 MB per semi-space: with V8's default (16 MB) a daemon holding 100 shim connections kept
// ~25 MB more anonymous memory for garbage it had long since collected (bench in the commit).
const commands = [
  {
    name: "tsruncd",
    pkg: "packages/daemon",
    entry: "dist/tsruncd.js",
    sqlite: true,
    nodeFlags: ["--max-semi-space-size=1"],
  },
  { name: "tsctl", pkg: "packages/client", entry: "dist/tsctl/main.js", sqlite: false, nodeFlags: [] },
];

for (const c of commands) {
  const outDir = join(root, c.pkg, "dist/bin");
  mkdirSync(outDir, { recursive: true });
  const bundle = join(outDir, `${c.name}.bundle.js`);
  await build({
    ...nodeBundle,
    entryPoints: [join(root, c.pkg, c.entry)],
    outfile: tmp(bundle),
    keepNames: true,
    // pino-pretty is optional; better-sqlite3 finds its addon through `bindings` only when no
    // nativeBinding is given, and we always give one in a bundle.
    external: ["pino-pretty", "bindings"],
    // import.meta.url has no meaning in a CommonJS bundle; the code that uses it falls back.
    define: { "import.meta.url": "__tsruncImportMetaUrl" },
    // The package's version for `-v` (tsctl reads package.json, which is not beside a bundle).
    banner: {
      js: `var __tsruncImportMetaUrl = require("node:url").pathToFileURL(__filename).href; globalThis.__tsruncPackageVersion = ${JSON.stringify(JSON.parse(readFileSync(join(root, c.pkg, "package.json"), "utf8")).version)};`,
    },
  });
  renameSync(tmp(bundle), bundle);
  const launcher = join(outDir, c.name);
  place(join(root, "scripts/lib/cli-launcher.cjs"), launcher, 0o755);
  if (c.nodeFlags.length > 0) {
    const text = readFileSync(launcher, "utf8").replace(
      /^#!.*/,
      `#!/usr/bin/env -S node ${c.nodeFlags.join(" ")}`,
    );
    writeFileSync(tmp(launcher), text, { mode: 0o755 });
    renameSync(tmp(launcher), launcher);
  }
  writeFileSync(join(outDir, "package.json"), '{ "type": "commonjs" }\n');
  if (c.sqlite) {
    const require = createRequire(join(root, c.pkg, "package.json"));
    const addon = join(
      dirname(require.resolve("better-sqlite3/package.json")),
      "build/Release/better_sqlite3.node",
    );
    place(addon, join(outDir, "better_sqlite3.node"), 0o755);
    // Built by scripts/build (npm run build:native -w @tsrunc/native) before this runs.
    const ours = join(root, "packages/native/build/Release/tsrunc_native.node");
    if (!existsSync(ours))
      throw new Error(`native addon missing: ${ours} (run npm run build:native -w @tsrunc/native)`);
    place(ours, join(outDir, "tsrunc_native.node"), 0o755);
  }
  const r = spawnSync(process.execPath, [...c.nodeFlags, launcher, "--help"], {
    env: { PATH: process.env.PATH, TSRUNC_WRITE_CODE_CACHE: "1" },
    stdio: ["ignore", "ignore", "inherit"],
  });
  if (r.status !== 0) throw new Error(`${c.name}: writing the code cache failed (exit ${r.status})`);
}
