import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { socketPath } from "@tsrunc/shim-contract/socket-path";
import t from "tap";
import { GroupLiveMarker, ownStartTime } from "./group-live.js";

const launcher = join(dirname(fileURLToPath(import.meta.url)), "../bin/containerd-shim-tsrunc-v2");

t.test("the marker holds pid and start time while containers are held", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "group-live-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const m = new GroupLiveMarker(join(dir, "sock"));
  m.sync(0);
  t.notOk(existsSync(m.path), "no marker while empty");
  m.sync(2);
  t.equal(readFileSync(m.path, "utf8"), `${process.pid} ${ownStartTime()}\n`);
  t.match(ownStartTime(), /^\d+$/);
  m.sync(0);
  t.notOk(existsSync(m.path), "removed when emptied");
});

t.test("the launcher's sh part answers a grouped start from a live marker, else Node does", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "group-start-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sockDir = join(dir, "s");
  mkdirSync(sockDir, { mode: 0o700 });
  const bundle = join(dir, "bundle");
  mkdirSync(bundle);
  writeFileSync(join(bundle, "config.json"), "{}");
  const address = "/run/containerd/containerd.sock";
  const sock = socketPath(address, "ns1", "group:default", sockDir);
  const server = createServer();
  await new Promise<void>((r) => server.listen(sock, r));
  t.teardown(() => server.close());
  const marker = new GroupLiveMarker(sock);
  marker.sync(1); // this test process plays the live server
  // Node must not run on the fast path: with this NODE_OPTIONS kept, any Node start-up fails.
  const env = {
    PATH: process.env.PATH,
    TSRUNC_GROUPED: "1",
    TSRUNC_SOCKET_DIR: sockDir,
    TSRUNC_KEEP_NODE_ENV: "1",
    NODE_OPTIONS: "--require /nonexistent/tsrunc-test-preload.cjs",
  };
  const args = ["-namespace", "ns1", "-address", address, "-publish-binary", "/x", "-id", "c2", "start"];
  const run = () => spawnSync(launcher, args, { cwd: bundle, env, input: "options", encoding: "utf8" });
  const fast = run();
  t.equal(fast.status, 0, `fast path: ${fast.stderr}`);
  t.equal(fast.stdout, `unix://${sock}`, "prints the group's address and nothing else");
  t.equal(readFileSync(join(bundle, "address"), "utf8"), `unix://${sock}`, "records it in the bundle");

  // A marker whose pid has another start time (a reused pid) is not believed: Node runs.
  writeFileSync(marker.path, `${process.pid} 1\n`);
  const slow = run();
  t.not(slow.status, 0, "the Node path ran (and failed on the test's NODE_OPTIONS)");
  marker.clear();
  const none = run();
  t.not(none.status, 0, "no marker: the Node path");
  // containerd reads stdout and stderr as one: the shell must not complain about the missing file.
  t.notMatch(none.stderr, /cannot open|No such file/, "nothing from sh on stderr");
});
