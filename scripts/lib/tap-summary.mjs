#!/usr/bin/env node
// Reads the TAP 14 stream that `tap -R tap` prints, passes it through, and counts results one
// level below each test file (one `t.test` = one test). A file that fails with no failing test
// inside it (a crash, a timeout, an uncaught error) counts as one failure of its own.
// Extra counts (lint, build) arrive as PRE_PASSED / PRE_FAILED in the environment.
// The last line printed is the one CI reads: "N passed, N failed[, N skipped]".
import { createInterface } from "node:readline";

let passed = Number(process.env.PRE_PASSED ?? 0);
let failed = Number(process.env.PRE_FAILED ?? 0);
let skipped = 0;
let fileInner = { total: 0, failed: 0 };
const failures = (process.env.PRE_FAILURES ?? "").split("\n").filter(Boolean);

const inner = /^ {4}(not )?ok \d+ - (.*?)(?: # (SKIP|TODO)\b(.*))?$/i;
const outer = /^(not )?ok \d+ - (\S+)(?: # (SKIP|TODO)\b(.*))?/i;

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  process.stdout.write(`${line}\n`);
  let m = inner.exec(line);
  if (m) {
    fileInner.total++;
    const name = m[2].replace(/ # time=.*$/, "");
    if (m[3]) skipped++;
    else if (m[1]) {
      failed++;
      fileInner.failed++;
      failures.push(name);
    } else passed++;
    continue;
  }
  m = outer.exec(line);
  if (m) {
    if (m[3] && fileInner.total === 0) skipped++;
    else if (m[1] && fileInner.failed === 0) {
      failed++;
      failures.push(`${m[2]} (the file itself failed)`);
    } else if (!m[1] && fileInner.total === 0) passed++;
    fileInner = { total: 0, failed: 0 };
  }
}
if (failures.length) {
  process.stdout.write("\nfailed:\n");
  for (const f of failures) process.stdout.write(`  - ${f}\n`);
}
process.stdout.write(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}\n`);
process.exitCode = failed > 0 ? 1 : 0;
