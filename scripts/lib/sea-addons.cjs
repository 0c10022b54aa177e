// The native addons of a single-file executable (scripts/lib/build-sea.mjs embeds them as SEA
// assets): dlopen needs a file, so each is copied once into a private, content-addressed cache
//   <base>/<sha256 of the addon>/<name>        base: /var/lib/tsrunc/addons (TSRUNC_ADDON_CACHE)
// and every later process reuses that copy. Rules, because whatever is in that file runs as root:
// - base and every directory above it belong to root and nobody else can write to them
//   (refused otherwise, one line naming the directory); what we create is 0700, files 0500;
// - a copy is written to a temp name in its final directory (O_EXCL, O_NOFOLLOW) and renamed,
//   so no process ever sees half a file and no world-writable place is involved;
// - a cached copy is loaded only after its SHA-256 (read through the descriptor we fstat) equals
//   the one recorded at build time; a copy that differs is replaced, never loaded.
// Plain CommonJS with built-in modules only: it runs inside the SEA, before any bundle.
"use strict";
const crypto = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");

const DEFAULT_BASE = "/var/lib/tsrunc/addons";
const BASE_ENV = "TSRUNC_ADDON_CACHE";

class AddonCacheError extends Error {
  constructor(message) {
    super(message);
    this.name = "AddonCacheError";
    this.code = "ERR_TSRUNC_ADDON_CACHE";
  }
}

function sha256(buf) {
  return crypto.createHash("sha256").update(buf).digest("hex");
}

/** Refuses a directory that is not root's alone (or not a directory at all). */
function checkDir(dir, st = fs.lstatSync(dir)) {
  if (!st.isDirectory()) throw new AddonCacheError(`addon cache: ${dir} is not a directory`);
  if (st.uid !== 0)
    throw new AddonCacheError(
      `addon cache: ${dir} is owned by uid ${st.uid}, not root; refusing to load code from it`,
    );
  // Group/other write: refused, sticky or not (a shared /tmp-like place is exactly what must not be used).
  if ((st.mode & 0o022) !== 0)
    throw new AddonCacheError(
      `addon cache: ${dir} is writable by others (mode ${(st.mode & 0o7777).toString(8)}); refusing to load code from it`,
    );
}

/** Checks dir and every directory above it (symlinks above resolved: /var/run → /run). */
function checkChain(dir) {
  for (let d = fs.realpathSync(dir); ; d = path.dirname(d)) {
    checkDir(d);
    if (d === "/") return;
  }
}

/** Checks what exists of base and above, creates the rest (0700), checks again; the real path. */
function prepareBase(base) {
  if (!path.isAbsolute(base)) throw new AddonCacheError(`addon cache: ${base} is not an absolute path`);
  let existing = path.resolve(base);
  while (!fs.existsSync(existing)) existing = path.dirname(existing);
  // Nothing is created below a directory someone else could have prepared.
  checkChain(existing);
  try {
    fs.mkdirSync(base, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new AddonCacheError(`addon cache: cannot create ${base}: ${err.code ?? err.message}`);
  }
  checkChain(base);
  return fs.realpathSync(base);
}

/** Reads fd to the end. */
function readAll(fd, size) {
  const buf = Buffer.allocUnsafe(size);
  let off = 0;
  while (off < size) {
    const n = fs.readSync(fd, buf, off, size - off, off);
    if (n === 0) break;
    off += n;
  }
  return off === size ? buf : buf.subarray(0, off);
}

/** True when file is a root-owned regular file, not writable by others, whose content hashes to sha. */
function verified(file, sha) {
  let fd;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    if (err.code === "ENOENT" || err.code === "ELOOP") return false;
    throw err;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.uid !== 0 || (st.mode & 0o022) !== 0) return false;
    return sha256(readAll(fd, st.size)) === sha;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The path of a verified copy of the addon `name` whose bytes are `bytes` (SHA-256 `sha`,
 * recorded at build time) under base; written there first if missing or different.
 * Returns { file, wrote } (wrote: a copy was (re)written by this call).
 */
function cachedAddon(name, bytes, sha, base = process.env[BASE_ENV] || DEFAULT_BASE) {
  if (!/^[A-Za-z0-9._-]+\.node$/.test(name)) throw new AddonCacheError(`addon cache: bad addon name ${name}`);
  if (!/^[0-9a-f]{64}$/.test(sha)) throw new AddonCacheError(`addon cache: bad digest for ${name}`);
  const realBase = prepareBase(base);
  const dir = path.join(realBase, sha);
  try {
    fs.mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if (err.code !== "EEXIST") throw new AddonCacheError(`addon cache: cannot create ${dir}: ${err.code}`);
  }
  checkDir(dir);
  const file = path.join(dir, name);
  if (verified(file, sha)) return { file, wrote: false };
  // Missing, or not what we embedded (tampered, truncated, wrong owner or mode): write a fresh
  // copy beside it and rename it over whatever is there.
  if (sha256(bytes) !== sha)
    throw new AddonCacheError(`addon cache: the embedded ${name} does not match its digest`);
  const tmp = path.join(dir, `.${name}.${process.pid}.${crypto.randomBytes(6).toString("hex")}`);
  const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;
  const fd = fs.openSync(tmp, flags, 0o500);
  try {
    let off = 0;
    while (off < bytes.length) off += fs.writeSync(fd, bytes, off, bytes.length - off);
    fs.fchmodSync(fd, 0o500);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  try {
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  if (!verified(file, sha)) throw new AddonCacheError(`addon cache: ${file} changed while it was written`);
  return { file, wrote: true };
}

module.exports = { cachedAddon, checkDir, AddonCacheError, DEFAULT_BASE, BASE_ENV };
