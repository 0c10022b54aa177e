// The shim's post-exit `delete` answered before any bundle is compiled, as the launcher's sh
// part does (packages/shim-runc-v2/src/launcher.sh, fast_delete; see there): containerd 1.6 runs
// and waits for `delete` after every shim exit, and a clean Task.Delete already left the
// DeleteResponse in the bundle (tsrunc-deleted.pb). Then only the server's socket may be left
// to remove. Anything unexpected (flags, ids, no marker) returns false: the bundle answers.
"use strict";
const { createHash } = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");

const ID = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
const STRING_FLAGS = new Set(["namespace", "address", "id", "bundle", "publish-binary", "socket"]);

/** Go-style flags as containerd passes them, or undefined when anything is unexpected. */
function parse(argv) {
  const f = {};
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("-")) break;
    const body = a.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq >= 0 ? body.slice(0, eq) : body;
    if (name === "debug") continue;
    if (!STRING_FLAGS.has(name)) return undefined;
    if (eq >= 0) f[name] = body.slice(eq + 1);
    else if (i + 1 < argv.length) f[name] = argv[++i];
    else return undefined;
  }
  f.verb = argv[i];
  return f;
}

/** Answers `delete` from the bundle's marker; true when it did (stdout written, then exit). */
function fastDelete(argv) {
  const f = parse(argv);
  if (f?.verb !== "delete" || argv.length !== argv.indexOf("delete") + 1) return false;
  const id = f.id ?? "";
  const ns = f.namespace ?? "";
  for (const v of [id, ns]) if (!ID.test(v) || v.length > 76) return false;
  const bundle = path.resolve(f.bundle || process.cwd());
  let bytes;
  try {
    bytes = fs.readFileSync(path.join(bundle, "tsrunc-deleted.pb"));
  } catch {
    return false;
  }
  // This container's own socket (@tsrunc/shim-contract/socket-path's name for it).
  const sum = createHash("sha256")
    .update(`${f.address ?? ""}\0${ns}\0${id}`)
    .digest("hex");
  const dir = process.env.TSRUNC_SOCKET_DIR || "/run/tsrunc/s";
  let sock = path.join(dir, sum);
  if (Buffer.byteLength(sock) > 107) sock = path.join(dir, sum.slice(0, 32));
  try {
    fs.unlinkSync(sock);
  } catch {}
  fs.writeSync(1, bytes);
  return true;
}

module.exports = { fastDelete };
