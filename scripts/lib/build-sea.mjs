// Single-file executables (Node 20 "single executable applications"): for the shim, tsruncd and
// tsctl, a copy of this Node with a blob injected by postject that holds sea-entry.cjs (bundled
// with sea-addons.cjs) as the main script and, as assets, the command's bundle, its V8 code
// cache (the very file the launcher uses: same Node, same flags, so V8 accepts it), the shim's
// separate `start` bundle and the native addons (with their SHA-256, checked before dlopen), all
// taken from dist/bin, where the bundle steps put them (a node-gyp rebuild elsewhere does not
// race with this step).
//   packages/shim-runc-v2/dist/sea/containerd-shim-tsrunc-v2
//   packages/daemon/dist/sea/tsruncd
//   packages/client/dist/sea/tsctl
// Each is ~99 MB (Node itself) and postject takes a few seconds, so one is rebuilt only when a
// digest of its inputs (Node, the entry, the assets, the config) differs from the one stored
// beside it (<name>.inputs). Run by scripts/build after bundle-shim.mjs and bundle-cli.mjs.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { nodeBundle } from "./esbuild-node.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "../..");
const SENTINEL = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";
const postject = join(root, "node_modules/.bin/postject");

const commands = [
  {
    name: "containerd-shim-tsrunc-v2",
    pkg: "packages/shim-runc-v2",
    assets: {
      "tsrunc-shim.js": "dist/bin/tsrunc-shim.js",
      "tsrunc-shim.cache": "dist/bin/tsrunc-shim.cache",
      "start.js": "dist/sea-inputs/start.js",
      "tsrunc_native.node": "dist/bin/tsrunc_native.node",
    },
    config: {
      bundle: "tsrunc-shim.js",
      cache: "tsrunc-shim.cache",
      start: "start.js",
      v8Flags: [],
      isolateFlags: [],
      bundled: false,
    },
  },
  {
    name: "tsruncd",
    pkg: "packages/daemon",
    assets: {
      "tsruncd.bundle.js": "dist/bin/tsruncd.bundle.js",
      "tsruncd.cache": "dist/bin/tsruncd.cache",
      "tsrunc_native.node": "dist/bin/tsrunc_native.node",
      "better_sqlite3.node": "dist/bin/better_sqlite3.node",
    },
    config: {
      bundle: "tsruncd.bundle.js",
      cache: "tsruncd.cache",
      // As cli-launcher.cjs and bundle-cli.mjs's nodeFlags (the launcher's shebang).
      v8Flags: ["--enable-experimental-regexp-engine"],
      isolateFlags: ["--max-semi-space-size=1"],
      sqlite: "better_sqlite3.node",
      bundled: true,
    },
  },
  {
    name: "tsctl",
    pkg: "packages/client",
    assets: { "tsctl.bundle.js": "dist/bin/tsctl.bundle.js", "tsctl.cache": "dist/bin/tsctl.cache" },
    config: {
      bundle: "tsctl.bundle.js",
      cache: "tsctl.cache",
      v8Flags: ["--enable-experimental-regexp-engine"],
      isolateFlags: [],
      bundled: true,
    },
  },
];

const sha256 = (buf) => createHash("sha256").update(buf).digest("hex");
const cleanEnv = { PATH: process.env.PATH ?? "/usr/bin:/bin" };

// The entry once for all: sea-entry.cjs with sea-addons.cjs inlined; the config stays a free
// variable, prepended per command.
const entry = (
  await build({
    ...nodeBundle,
    entryPoints: [join(root, "scripts/lib/sea-entry.cjs")],
    write: false,
  })
).outputFiles[0].text;
const canStrip = spawnSync("strip", ["--version"], { stdio: "ignore" }).status === 0;
const nodeBinary = readFileSync(process.execPath);
const nodeDigest = sha256(nodeBinary);

for (const c of commands) {
  const outDir = join(root, c.pkg, "dist/sea");
  const work = join(outDir, ".work");
  const out = join(outDir, c.name);
  const assets = Object.fromEntries(
    Object.entries(c.assets).map(([k, f]) => [k, f.startsWith("/") ? f : join(root, c.pkg, f)]),
  );
  const addons = {};
  const inputs = createHash("sha256").update(`${nodeDigest}\nstrip=${canStrip}\n${entry}\n`);
  for (const [k, f] of Object.entries(assets)) {
    if (!existsSync(f)) throw new Error(`${c.name}: ${f} is missing (the bundle steps run first)`);
    const digest = sha256(readFileSync(f));
    if (k.endsWith(".node")) addons[k] = digest;
    inputs.update(`${k} ${digest}\n`);
  }
  const config = { name: c.name, addons, ...c.config };
  const main = `var __TSRUNC_SEA__ = ${JSON.stringify(config)};\n${entry}`;
  const stamp = sha256(inputs.update(main).digest("hex"));
  const stampFile = join(outDir, `${c.name}.inputs`);
  if (existsSync(out) && existsSync(stampFile) && readFileSync(stampFile, "utf8").trim() === stamp) continue;

  const t0 = performance.now();
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  writeFileSync(join(work, "main.cjs"), main);
  // useCodeCache stays off: the entry is small, and a cache V8 rejects (tsruncd's second run has
  // other flags) makes Node print a warning on stderr, which containerd reads as the shim's answer.
  const seaConfig = {
    main: join(work, "main.cjs"),
    output: join(work, "blob"),
    disableExperimentalSEAWarning: true,
    useCodeCache: false,
    useSnapshot: false,
    assets,
  };
  writeFileSync(join(work, "sea-config.json"), JSON.stringify(seaConfig, null, 2));
  run(process.execPath, ["--experimental-sea-config", join(work, "sea-config.json")]);
  const exe = join(work, c.name);
  copyFileSync(process.execPath, exe);
  chmodSync(exe, 0o755);
  // Debian's node keeps its symbol table and DWARF (12.6 MB of 99): never loaded, so only disk.
  if (canStrip) run("strip", [exe]);
  run(postject, [exe, "NODE_SEA_BLOB", join(work, "blob"), "--sentinel-fuse", SENTINEL]);
  // Renamed over the old one: running shims keep their (deleted) inode.
  renameSync(exe, out);
  writeFileSync(stampFile, `${stamp}\n`);
  rmSync(work, { recursive: true, force: true });
  process.stderr.write(`build-sea: ${c.name} (${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { env: cleanEnv, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}): ${r.stderr}${r.stdout}`);
}
