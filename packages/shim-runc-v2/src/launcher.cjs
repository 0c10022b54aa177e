#!/usr/bin/env node
// containerd-shim-tsrunc-v2's Node part (launcher.sh runs first, see there): a small launcher
// for the bundled shim (tsrunc-shim.js beside it).
// Every ctr run starts Node twice or three times (start, the server, delete when the sh part
// above cannot answer it), and compiling the 0.3 MB bundle was the largest cost of each start-up.
// So the bundle is compiled with the V8 code cache written at install time (tsrunc-shim.cache):
// V8 then skips parsing and compiling what the cache covers. A missing or stale cache (another
// Node version) only makes start-up slower.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");
const { createRequire, wrap } = require("node:module");

const dir = __dirname;
// `start` (cli/start-main.ts), bundled on its own and put here by the bundle step: a function
// returning its module's exports. Undefined when this file runs unbundled.
const startBundle = undefined;

// `start` runs once per container on the critical path: a small script instead of the whole
// bundle's code cache. containerd puts the verb last; startMain parses the flags itself and
// declines (false) when the verb is not `start` after all.
const argv = process.argv.slice(2);
const started =
  argv.at(-1) === "start" &&
  !process.env.TSRUNC_WRITE_CODE_CACHE &&
  typeof startBundle === "function" &&
  startBundle().startMain(argv);
if (!started) runBundle();

/** Compiles and runs the bundle with its code cache. */
function runBundle() {
  const file = path.join(dir, "tsrunc-shim.js");
  const cacheFile = path.join(dir, "tsrunc-shim.cache");
  const source = fs.readFileSync(file, "utf8");
  let cachedData;
  if (!process.env.TSRUNC_WRITE_CODE_CACHE) {
    try {
      cachedData = fs.readFileSync(cacheFile);
    } catch {}
  }
  const script = new vm.Script(wrap(source), { filename: file, cachedData });
  const mod = { exports: {}, filename: file, id: file, loaded: false };
  const done = script.runInThisContext()(mod.exports, createRequire(file), mod, file, dir);
  if (process.env.TSRUNC_WRITE_CODE_CACHE) {
    // Build time: the bundle loads every module (TSRUNC_WARM_ALL); keep what V8 compiled.
    Promise.resolve(globalThis.__tsruncMain ?? done).then(() => {
      const tmp = `${cacheFile}.${process.pid}`;
      fs.writeFileSync(tmp, script.createCachedData());
      fs.renameSync(tmp, cacheFile);
      process.exit(0);
    });
  }
}
