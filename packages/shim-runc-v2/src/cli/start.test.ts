import { existsSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { GROUP_ANNOTATION, groupedInvocation, groupId, serverEnvironment, withGroupLock } from "./start.js";

t.test("groupId: grouped mode, a pod's sandbox, or the container itself", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "start-group-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const spec = (annotations: Record<string, string>) =>
    writeFileSync(join(dir, "config.json"), JSON.stringify({ annotations }));
  spec({});
  t.equal(await groupId(dir, "c1"), "c1");
  t.equal(await groupId(dir, "c1", true), "group:default");
  spec({ "io.kubernetes.cri.sandbox-id": "sb1" });
  t.equal(await groupId(dir, "c1"), "sb1");
  t.equal(await groupId(dir, "c1", true), "group:default", "grouped mode groups pods too");
  spec({ [GROUP_ANNOTATION]: "web" });
  t.equal(await groupId(dir, "c1", true), "group:web");
  t.equal(await groupId(dir, "c1"), "c1", "the annotation means nothing outside grouped mode");
  spec({ [GROUP_ANNOTATION]: "../x" });
  t.equal(await groupId(dir, "c1", true), "group:default", "an invalid group name is ignored");
});

t.test("grouped mode comes from the binary's name or TSRUNC_GROUPED", async (t) => {
  t.ok(groupedInvocation("/usr/local/bin/containerd-shim-tsrunc-grouped-v2", {}));
  t.notOk(groupedInvocation("/usr/local/bin/containerd-shim-tsrunc-v2", {}));
  t.ok(groupedInvocation("/usr/local/bin/containerd-shim-tsrunc-v2", { TSRUNC_GROUPED: "1" }));
});

t.test("the server's environment has no NODE_* unless asked to keep them", async (t) => {
  const env = serverEnvironment({ PATH: "/bin", NODE_OPTIONS: "--x", NODE_EXTRA_CA_CERTS: "/c" }, "g");
  t.same(env, { PATH: "/bin", TSRUNC_SHIM_GROUP: "g", MALLOC_ARENA_MAX: "1" });
  const kept = serverEnvironment({ NODE_OPTIONS: "--x", TSRUNC_KEEP_NODE_ENV: "1" }, "g");
  t.equal(kept.NODE_OPTIONS, "--x");
});

t.test("withGroupLock: one holder at a time, released after", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "start-lock-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const sock = join(dir, "s", "sock");
  let inside = 0;
  let most = 0;
  await Promise.all(
    Array.from({ length: 20 }, () =>
      withGroupLock(sock, async () => {
        inside++;
        most = Math.max(most, inside);
        await new Promise((r) => setTimeout(r, 1));
        inside--;
      }),
    ),
  );
  t.equal(most, 1, "never two holders");
  t.notOk(existsSync(`${sock}.lock`), "released");
  // A dead holder's lock (older than 5 s) is broken.
  writeFileSync(`${sock}.lock`, "");
  utimesSync(`${sock}.lock`, new Date(Date.now() - 10_000), new Date(Date.now() - 10_000));
  t.equal(await withGroupLock(sock, async () => 42), 42);
});
