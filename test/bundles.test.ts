// The bundled commands start fast only while V8 accepts their code cache, and V8 rejects it
// silently (a different flag hash, source or Node version): tsruncd's was rejected on every start
// for a while because a module set a V8 flag at load. The launcher reports its verdict on request.
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";

const repo = join(dirname(fileURLToPath(import.meta.url)), "../..");

for (const [name, dir] of [
  ["tsruncd", "packages/daemon/dist/bin"],
  ["tsctl", "packages/client/dist/bin"],
] as const) {
  t.test(`${name}: the code cache written at build time is accepted`, async (t) => {
    // Run as a person or systemd runs it (the shebang may carry V8 flags the cache depends on).
    const r = spawnSync(join(repo, dir, name), ["--help"], {
      env: { PATH: process.env.PATH, TSRUNC_CODE_CACHE_REPORT: "1" },
      stdio: ["ignore", "ignore", "pipe"],
      encoding: "utf8",
    });
    t.equal(r.status, 0, r.stderr);
    t.equal(r.stderr, "code cache: accepted\n");
  });
}

// The single files (packages/*/dist/sea) carry the same bundles and caches; tsruncd's is checked
// in its second run (with its heap flag), which needs its addon: a root-owned cache of the test's.
for (const [name, dir] of [
  ["containerd-shim-tsrunc-v2", "packages/shim-runc-v2/dist/sea"],
  ["tsruncd", "packages/daemon/dist/sea"],
  ["tsctl", "packages/client/dist/sea"],
] as const) {
  t.test(`${name} (single file): the embedded code cache is accepted`, async (t) => {
    const cache = `/run/tsr-bundles-${process.pid}-${name}`;
    t.teardown(() => rmSync(cache, { recursive: true, force: true }));
    const r = spawnSync(join(repo, dir, name), ["--help"], {
      env: { PATH: process.env.PATH, TSRUNC_CODE_CACHE_REPORT: "1", TSRUNC_ADDON_CACHE: cache },
      stdio: ["ignore", "ignore", "pipe"],
      encoding: "utf8",
    });
    t.equal(r.status, 0, r.stderr);
    t.equal(r.stderr, "code cache: accepted\n");
  });
}
