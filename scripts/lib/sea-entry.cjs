// The main script of a single-file executable (Node SEA; built by scripts/lib/build-sea.mjs,
// which bundles this file with sea-addons.cjs and defines __TSRUNC_SEA__). It does what the
// launchers do (launcher.sh + launcher.cjs for the shim, cli-launcher.cjs for tsruncd/tsctl)
// with the bundle, its V8 code cache and the native addons read from the executable's assets:
// - Node's knobs from the environment are dropped for our children (NODE_OPTIONS would also
//   make V8 reject the code cache of the next Node we start);
// - V8 flags: those V8 takes at any time are set before compiling (the code cache was written
//   under them); heap flags V8 reads only when the isolate is made (tsruncd's
//   --max-semi-space-size=1) need a fresh isolate: the process runs itself again once, same pid,
//   through the addon's execve with the flags in NODE_OPTIONS, which the second run drops;
// - the addons are copied once into a verified, content-addressed cache (sea-addons.cjs) on first
//   use and loaded from there with process.dlopen (require here loads built-in modules only).
"use strict";
const { isSea, getAsset, getRawAsset } = require("node:sea");
const path = require("node:path");
const v8 = require("node:v8");
const vm = require("node:vm");
const { createRequire, wrap } = require("node:module");
const { cachedAddon } = require("./sea-addons.cjs");
const { fastDelete } = require("./sea-shim-fast.cjs");

/**
 * @type {{ name: string, bundle: string, cache: string, start?: string, v8Flags: string[],
 *   isolateFlags: string[], addons: Record<string, string>, sqlite?: string, bundled: boolean }}
 */
const config = __TSRUNC_SEA__;
const REEXEC = "TSRUNC_SEA_ISOLATE_FLAGS";
const argv = process.argv.slice(2);
const file = process.execPath;

if (!isSea()) throw new Error("sea-entry.cjs runs only inside a single-file executable");

// The re-run's own NODE_OPTIONS (isolate flags) and marker go first, then the caller's knobs.
const rerun = process.env[REEXEC] === "1";
if (rerun) {
  delete process.env[REEXEC];
  delete process.env.NODE_OPTIONS;
}
// Every NODE_* variable, as @tsrunc/shim-contract's withoutNodeVariables drops them for shims.
if (process.env.TSRUNC_KEEP_NODE_ENV !== "1") {
  for (const k of Object.keys(process.env)) if (k.startsWith("NODE_")) delete process.env[k];
}

const addonPaths = new Map();
/** The verified cached copy of an embedded addon (extracted on first call). */
function addonPath(name) {
  let p = addonPaths.get(name);
  if (p === undefined) {
    const sha = config.addons[name];
    if (!sha) throw new Error(`${name} is not embedded in ${config.name}`);
    p = cachedAddon(name, Buffer.from(getRawAsset(name)), sha).file;
    addonPaths.set(name, p);
  }
  return p;
}
globalThis.__tsruncAddonPath = addonPath;
if (config.sqlite)
  Object.defineProperty(globalThis, "__tsruncSqliteBinding", {
    configurable: true,
    get: () => addonPath(config.sqlite),
  });
if (config.bundled) globalThis.__tsruncBundled = true;
globalThis.__tsruncSea = true; // `-v` says so

const informational = argv.some((a) => /^--?(h|help|v|version)$/.test(a));
if (config.isolateFlags.length > 0 && !rerun && (!informational || process.env.TSRUNC_CODE_CACHE_REPORT)) {
  // A mistake here (bad cache directory) is the user's to fix: one line, like the commands' own.
  let native;
  try {
    native = { exports: {} };
    process.dlopen(native, addonPath("tsrunc_native.node"));
  } catch (err) {
    process.stderr.write(`${config.name}: ${err.message}\n`);
    process.exit(1);
  }
  const env = Object.entries({
    ...process.env,
    [REEXEC]: "1",
    NODE_OPTIONS: config.isolateFlags.join(" "),
  }).map(([k, v]) => `${k}=${v}`);
  try {
    native.exports.execve(file, [process.argv[1] ?? file, ...argv], env);
  } catch (err) {
    process.stderr.write(
      `${config.name}: cannot run itself again with ${config.isolateFlags.join(" ")}: ${err.message}\n`,
    );
    process.exit(1);
  }
}

for (const f of config.v8Flags) v8.setFlagsFromString(f);

// The shim: `delete` after a clean Task.Delete needs no bundle (sea-shim-fast.cjs).
if (config.start !== undefined && argv.at(-1) === "delete" && !process.env.TSRUNC_CODE_CACHE_REPORT) {
  let done = false;
  try {
    done = fastDelete(argv);
  } catch {}
  if (done) process.exit(0);
}

// The shim: its server needs the addon; a cache it may not use is reported by `start`, whose
// output containerd shows, rather than by a server that dies before it answers ("ttrpc: closed").
if (config.start !== undefined && argv.at(-1) === "start" && !process.env.TSRUNC_CODE_CACHE_REPORT) {
  try {
    addonPath("tsrunc_native.node");
  } catch (err) {
    process.stderr.write(`${config.name}: ${err.message}\n`);
    process.exit(1);
  }
}

const started =
  config.start !== undefined &&
  argv.at(-1) === "start" &&
  !process.env.TSRUNC_CODE_CACHE_REPORT &&
  runScript(getAsset(config.start, "utf8"), undefined, `${config.name}-start.js`).startMain(argv);
if (!started) runBundle();

/** Compiles a CommonJS source in the module wrapper and runs it; returns its exports. */
function runScript(source, cachedData, name, report) {
  const filename = path.join(path.dirname(file), name);
  const script = new vm.Script(wrap(source.replace(/^#!.*/, "")), { filename, cachedData });
  if (report) {
    const verdict = cachedData === undefined ? "none" : script.cachedDataRejected ? "rejected" : "accepted";
    process.stderr.write(`code cache: ${verdict}\n`);
    process.exit(0);
  }
  const mod = { exports: {}, filename, id: filename, loaded: false };
  script.runInThisContext()(mod.exports, createRequire(file), mod, file, path.dirname(file));
  return mod.exports;
}

function runBundle() {
  let cachedData;
  try {
    cachedData = Buffer.from(getRawAsset(config.cache));
  } catch {}
  runScript(
    getAsset(config.bundle, "utf8"),
    cachedData,
    config.bundle,
    Boolean(process.env.TSRUNC_CODE_CACHE_REPORT),
  );
}
