// The committed generated code must be what scripts/generate.mjs makes of proto/ today: a
// .proto edit without `npm run gen -w @tsrunc/protocol` fails here.

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import t from "tap";
import { packageDir } from "./test-support.js";

t.test("src/generated is up to date with proto/ and scripts/generate.mjs", async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "protocol-gen-"));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  execFileSync(process.execPath, [path.join(packageDir, "scripts", "generate.mjs"), "--quiet", tmp], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const committedDir = path.join(packageDir, "src", "generated");
  const fresh = fs.readdirSync(tmp).sort();
  t.same(fs.readdirSync(committedDir).sort(), fresh, "same files");
  for (const f of fresh) {
    const want = fs.readFileSync(path.join(tmp, f), "utf8");
    const have = fs.readFileSync(path.join(committedDir, f), "utf8");
    t.ok(have === want, `${f} is fresh (run: npm run gen -w @tsrunc/protocol)`);
  }
});

t.test("the generator is deterministic", async (t) => {
  const a = fs.mkdtempSync(path.join(os.tmpdir(), "protocol-gen-"));
  const b = fs.mkdtempSync(path.join(os.tmpdir(), "protocol-gen-"));
  t.teardown(() => {
    fs.rmSync(a, { recursive: true, force: true });
    fs.rmSync(b, { recursive: true, force: true });
  });
  for (const dir of [a, b]) {
    execFileSync(process.execPath, [path.join(packageDir, "scripts", "generate.mjs"), "--quiet", dir]);
  }
  for (const f of fs.readdirSync(a)) {
    t.ok(fs.readFileSync(path.join(a, f), "utf8") === fs.readFileSync(path.join(b, f), "utf8"), f);
  }
});
