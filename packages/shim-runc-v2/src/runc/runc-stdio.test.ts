import { closeSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { RuncError } from "./runc-errors.js";
import { openStdio } from "./runc-stdio.js";

async function tempDir(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "tsrunc-stdio-test-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function fdIsOpen(fd: number): boolean {
  try {
    return readFileSync(`/proc/self/fdinfo/${fd}`, "utf8").length > 0;
  } catch {
    return false;
  }
}

t.test("defaults to /dev/null", async (t) => {
  const s = await openStdio("create");
  t.same([s.stdin, s.stdout, s.stderr], ["ignore", "ignore", "ignore"]);
  await s.close();
});

t.test("fd numbers pass through and stay the caller's", async (t) => {
  const dir = await tempDir(t);
  const fd = openSync(join(dir, "f"), "w");
  const s = await openStdio("create", { stdout: fd, stderr: fd });
  t.same([s.stdin, s.stdout, s.stderr], ["ignore", fd, fd]);
  await s.close();
  t.ok(fdIsOpen(fd), "close() leaves the caller's fd alone");
  closeSync(fd);
});

t.test("paths are opened (stdin read-only, outputs appended) and closed", async (t) => {
  const dir = await tempDir(t);
  writeFileSync(join(dir, "in"), "input");
  writeFileSync(join(dir, "out"), "old\n");
  const s = await openStdio("exec", [
    { path: join(dir, "in") },
    { path: join(dir, "out") },
    { path: join(dir, "err") },
  ]);
  t.type(s.stdin, "number");
  t.type(s.stdout, "number");
  t.type(s.stderr, "number");
  const fds = [s.stdin, s.stdout, s.stderr] as number[];
  t.match(readFileSync(`/proc/self/fdinfo/${fds[0]}`, "utf8"), /flags:\s+0?[0-7]*0\n/, "stdin is O_RDONLY");
  writeFileSync(fds[1]!, "new\n");
  t.equal(readFileSync(join(dir, "out"), "utf8"), "old\nnew\n", "stdout appends");
  t.equal(readFileSync(join(dir, "err"), "utf8"), "", "stderr is created");
  await s.close();
  await s.close();
  for (const fd of fds) t.notOk(fdIsOpen(fd), `fd ${fd} closed`);
});

t.test("bad targets are invalid arguments", async (t) => {
  const dir = await tempDir(t);
  const bad = [
    { stdout: -1 },
    { stdout: 1.5 },
    { stdin: { path: "relative" } },
    { stderr: "inherit" as unknown as number },
  ];
  for (const stdio of bad) {
    const err = await openStdio("create", stdio).catch((e: unknown) => e);
    t.ok(err instanceof RuncError && err.kind === "invalid-argument", JSON.stringify(stdio));
  }
  // stderr cannot be opened: the stdin and stdout already opened are closed again.
  writeFileSync(join(dir, "in"), "");
  const before = readdirSync("/proc/self/fd").length;
  const err = await openStdio("create", {
    stdin: { path: join(dir, "in") },
    stdout: { path: join(dir, "o") },
    stderr: { path: join(dir, "no-such-dir", "e") },
  }).catch((e: unknown) => e);
  t.ok(err instanceof RuncError && err.kind === "invalid-argument");
  t.match((err as Error).message, /stderr: cannot open .*no-such-dir/);
  t.equal(readdirSync("/proc/self/fd").length, before, "nothing left open");
});
