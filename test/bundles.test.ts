// The bundled commands start fast only while V8 accepts their code cache, and V8 rejects it
// silently (a different flag hash, source or Node version): tsruncd's was rejected on every start
// for a while because a module set a V8 flag at load. The launcher reports its verdict on request.
import { spawnSync } from "node:child_process";
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
