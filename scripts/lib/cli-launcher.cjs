#!/usr/bin/env node
// Launcher for a bundled command (tsruncd, tsctl): runs `<name>.bundle.js` beside it, compiled
// with the V8 code cache `<name>.cache` written at build time, so that a command a person types
// does not pay for parsing and compiling the bundle on every start. A missing or stale cache
// (another Node version) only makes start-up slower. For tsruncd it also tells better-sqlite3
// where its native addon is (beside the bundle; there is no node_modules after install); ours,
// tsrunc_native.node, is found beside the bundle by @tsrunc/native itself (import.meta.url).
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");
const { createRequire, wrap } = require("node:module");

const dir = __dirname;
const name = path.basename(__filename);
const file = path.join(dir, `${name}.bundle.js`);
const cacheFile = path.join(dir, `${name}.cache`);
const writeCache = Boolean(process.env.TSRUNC_WRITE_CODE_CACHE);
globalThis.__tsruncSqliteBinding = path.join(dir, "better_sqlite3.node");
globalThis.__tsruncBundled = true;
// V8 refuses a code cache whose flag hash differs from the running isolate's, and tsruncd turns
// on the linear-time regexp engine when its filters module loads (store/filters.ts). Set here,
// before compiling, the flag is the same when the cache is written and when it is read; without
// this tsruncd's cache was rejected on every start. (Harmless for tsctl: the flag only adds an engine.)
require("node:v8").setFlagsFromString("--enable-experimental-regexp-engine");
let cachedData;
if (!writeCache) {
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {}
}
// A shebang the entry kept is not JavaScript inside the module wrapper.
const source = fs.readFileSync(file, "utf8").replace(/^#!.*/, "");
const script = new vm.Script(wrap(source), { filename: file, cachedData });
if (process.env.TSRUNC_CODE_CACHE_REPORT) {
  // For test/bundles.test.ts: a rejected cache costs every start-up silently, so a test asks.
  const verdict = cachedData === undefined ? "none" : script.cachedDataRejected ? "rejected" : "accepted";
  process.stderr.write(`code cache: ${verdict}\n`);
  process.exit(0);
}
if (writeCache) {
  // Build time: the command runs once (with --help); keep what V8 compiled when it exits.
  process.on("exit", () => {
    const tmp = `${cacheFile}.${process.pid}`;
    fs.writeFileSync(tmp, script.createCachedData());
    fs.renameSync(tmp, cacheFile);
  });
}
const mod = { exports: {}, filename: file, id: file, loaded: false };
script.runInThisContext()(mod.exports, createRequire(file), mod, file, dir);
