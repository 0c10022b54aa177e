#!/usr/bin/env node
// containerd-shim-tsrunc-v2: a small launcher for the bundled shim (tsrunc-shim.js beside it).
// Every ctr run starts Node three times (start, the server, delete), and compiling the 0.5 MB
// bundle was the largest cost of each start-up. So the bundle is compiled with the V8 code cache
// written at install time (tsrunc-shim.cache): V8 then skips parsing and compiling what the cache
// covers. A missing or stale cache (another Node version) only makes start-up slower.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");
const { createRequire, wrap } = require("node:module");

const dir = __dirname;

// The post-exit `delete` containerd 1.6 runs after every shim exit, answered before the bundle
// loads: a clean Task.Delete left the DeleteResponse in the bundle (tsrunc-deleted.pb), so
// nothing is left to clean but the server's socket (when it died between Delete and Shutdown).
// Only builtins: fs, path and crypto are already in Node's start-up snapshot. Anything this
// does not recognise (flags, ids, no marker) falls through to the bundle's full `delete`.
if (process.env.TSRUNC_WRITE_CODE_CACHE || !fastDelete(process.argv.slice(2))) runBundle();

function fastDelete(argv) {
  const strings = { namespace: "", address: "", "publish-binary": "", id: "", bundle: "", socket: "" };
  let verb = "";
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith("-") || arg === "-" || arg === "--") {
      verb = arg === "--" ? argv[i + 1] : arg;
      break;
    }
    const body = arg.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq >= 0 ? body.slice(0, eq) : body;
    if (name === "debug" || name === "v" || name === "info") {
      if (name !== "debug") return false;
      continue;
    }
    if (!(name in strings)) return false;
    if (eq >= 0) strings[name] = body.slice(eq + 1);
    else if (i + 1 < argv.length) strings[name] = argv[++i];
    else return false;
  }
  if (verb !== "delete") return false;
  // containerd's identifier rule (as @tsrunc/shim-contract/identifiers): no path from a bad id.
  const ident = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
  for (const v of [strings.id, strings.namespace]) if (v.length > 76 || !ident.test(v)) return false;
  let bytes;
  try {
    bytes = fs.readFileSync(path.join(path.resolve(strings.bundle || process.cwd()), "tsrunc-deleted.pb"));
  } catch {
    return false;
  }
  // The socket as @tsrunc/shim-contract/socket-path names it (this container is its own group:
  // a pod's shared socket belongs to the sandbox's shim).
  const sockDir = process.env.TSRUNC_SOCKET_DIR || "/run/tsrunc/s";
  const digest = require("node:crypto")
    .createHash("sha256")
    .update(`${strings.address}\0${strings.namespace}\0${strings.id}`)
    .digest("hex");
  let sock = path.join(sockDir, digest);
  if (Buffer.byteLength(sock) > 107) sock = path.join(sockDir, digest.slice(0, 32));
  try {
    fs.unlinkSync(sock);
  } catch {}
  fs.writeSync(1, bytes);
  return true;
}

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
