// stdio URIs beyond fifos, through real containerd: `ctr run --log-uri file://…` and
// `--log-uri binary://…` with a small logger program (test/fixtures/test-logger.sh).
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { assertNoLeaks } from "./helpers/cleanup.js";
import { containerdWithOurShim } from "./helpers/our-shim.js";
import { waitFor } from "./helpers/wait.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const logger = path.join(repo, "test/fixtures/test-logger.sh");

t.test("file:// log URI: stdout and stderr appended to the file", async (t) => {
  const cd = await containerdWithOurShim(t);
  const rootfs = cd.rootfs();
  const log = path.join(cd.root, "logs", "c1.log");
  const r = await cd.ctr([
    "run",
    "--rm",
    "--runtime",
    "io.containerd.tsrunc.v2",
    "--log-uri",
    `file://${log}`,
    "--rootfs",
    rootfs,
    "c1",
    "/bin/sh",
    "-c",
    "echo to-out; echo to-err >&2; exit 2",
  ]);
  t.equal(r.exitCode, 2, r.stderr);
  t.equal(fs.readFileSync(log, "utf8").split("\n").sort().join(","), ",to-err,to-out");
  await cd.stop();
  assertNoLeaks(t, cd.scope);
});

t.test(
  "binary:// log URI: the logger gets fds 3 and 4, the ids, its arguments, and ends with the container",
  async (t) => {
    const cd = await containerdWithOurShim(t);
    const rootfs = cd.rootfs();
    const dir = path.join(cd.root, "logger-out");
    fs.mkdirSync(dir);
    const r = await cd.ctr([
      "run",
      "--rm",
      "--runtime",
      "io.containerd.tsrunc.v2",
      "--log-uri",
      `binary://${logger}?dir=${encodeURIComponent(dir)}`,
      "--rootfs",
      rootfs,
      "c2",
      "/bin/sh",
      "-c",
      "echo line-out; echo line-err >&2",
    ]);
    t.equal(r.exitCode, 0, r.stderr);
    await waitFor(() => fs.existsSync(path.join(dir, "finished")), { what: "logger finished" });
    t.equal(fs.readFileSync(path.join(dir, "stdout"), "utf8"), "line-out\n");
    t.equal(fs.readFileSync(path.join(dir, "stderr"), "utf8"), "line-err\n");
    t.equal(fs.readFileSync(path.join(dir, "ids"), "utf8"), `${cd.namespace}/c2\n`);
    await cd.stop();
    assertNoLeaks(t, cd.scope);
  },
);

t.test("a logger that never becomes ready fails the create with a clear error", async (t) => {
  const cd = await containerdWithOurShim(t, { env: { TSRUNC_LOGGER_READY_MS: "1000" } });
  const rootfs = cd.rootfs();
  const r = await cd.ctr([
    "run",
    "--rm",
    "--runtime",
    "io.containerd.tsrunc.v2",
    "--log-uri",
    `binary://${path.join(repo, "test/fixtures/stuck-logger.sh")}`,
    "--rootfs",
    rootfs,
    "c3",
    "/bin/true",
  ]);
  t.not(r.exitCode, 0);
  t.match(r.stderr, /logger not ready after 1000 ms/);
  await cd.stop();
  assertNoLeaks(t, cd.scope);
});
