import t from "tap";
import {
  checkId,
  checkPath,
  checkpointArgs,
  checkSignal,
  createArgs,
  deleteArgs,
  execArgs,
  globalArgs,
  killArgs,
} from "./runc-args.js";
import { RuncError } from "./runc-errors.js";

function invalid(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof RuncError && err.kind === "invalid-argument" && err.code === 3) return err.message;
    throw err;
  }
  throw new Error("did not throw");
}

t.test("ids follow containerd's identifier rule", async (t) => {
  for (const ok of ["c1", "a.b-c_d", "A9", "x".repeat(76)]) t.doesNotThrow(() => checkId("state", ok), ok);
  for (const bad of ["", "../x", "a/b", "-flag", "a..b", "a-", ".a", "x".repeat(77), "é", "a b", "a\0"]) {
    t.ok(
      invalid(() => checkId("state", bad)),
      JSON.stringify(bad),
    );
  }
});

t.test("paths must be absolute", async (t) => {
  t.doesNotThrow(() => checkPath("create", "bundle", "/b"));
  t.doesNotThrow(() => checkPath("create", "consoleSocket", undefined));
  t.match(
    invalid(() => checkPath("create", "bundle", "b")),
    /bundle must be an absolute path/,
  );
  t.ok(invalid(() => checkPath("create", "bundle", "--root=/x")));
  t.ok(invalid(() => checkPath("create", "bundle", "/a\0b")));
});

t.test("signals are numbers 1..64", async (t) => {
  t.doesNotThrow(() => checkSignal("kill", 9));
  t.doesNotThrow(() => checkSignal("kill", 64));
  for (const bad of [0, 65, -9, 1.5, Number.NaN])
    t.ok(
      invalid(() => checkSignal("kill", bad)),
      String(bad),
    );
});

t.test("global flags", async (t) => {
  t.same(globalArgs({ root: "/r" }, "/t/log.json"), [
    "--root",
    "/r",
    "--log",
    "/t/log.json",
    "--log-format",
    "json",
  ]);
  t.same(
    globalArgs(
      { root: "/r", debug: true, systemdCgroup: true, criu: "/usr/sbin/criu", rootless: false },
      "/l",
    ),
    [
      "--root",
      "/r",
      "--log",
      "/l",
      "--log-format",
      "json",
      "--debug",
      "--systemd-cgroup",
      "--criu",
      "/usr/sbin/criu",
      "--rootless",
      "false",
    ],
  );
});

t.test("subcommands", async (t) => {
  t.same(createArgs("c", "/b", { pidFile: "/p" }), ["create", "--bundle", "/b", "--pid-file", "/p", "c"]);
  t.same(createArgs("c", "/b", { pidFile: "/p", consoleSocket: "/s", noPivot: true, noNewKeyring: true }), [
    "create",
    "--bundle",
    "/b",
    "--pid-file",
    "/p",
    "--console-socket",
    "/s",
    "--no-pivot",
    "--no-new-keyring",
    "c",
  ]);
  t.same(execArgs("c", "/t/process.json", { pidFile: "/p", consoleSocket: "/s" }), [
    "exec",
    "--detach",
    "--pid-file",
    "/p",
    "--process",
    "/t/process.json",
    "--console-socket",
    "/s",
    "c",
  ]);
  t.same(killArgs("c", 9, false), ["kill", "c", "9"]);
  t.same(killArgs("c", 15, true), ["kill", "--all", "c", "15"]);
  t.same(deleteArgs("c", false), ["delete", "c"]);
  t.same(deleteArgs("c", true), ["delete", "--force", "c"]);
  t.same(checkpointArgs("c", { imagePath: "/i" }), ["checkpoint", "--image-path", "/i", "c"]);
  t.same(
    checkpointArgs("c", {
      imagePath: "/i",
      workPath: "/w",
      parentPath: "../parent",
      leaveRunning: true,
      tcpEstablished: true,
      extUnixSk: true,
      shellJob: true,
      fileLocks: true,
      preDump: true,
      autoDedup: true,
      lazyPages: true,
      manageCgroupsMode: "soft",
      emptyNamespaces: ["network"],
    }),
    [
      "checkpoint",
      "--image-path",
      "/i",
      "--work-path",
      "/w",
      "--parent-path",
      "../parent",
      "--leave-running",
      "--tcp-established",
      "--ext-unix-sk",
      "--shell-job",
      "--file-locks",
      "--pre-dump",
      "--auto-dedup",
      "--lazy-pages",
      "--manage-cgroups-mode",
      "soft",
      "--empty-ns",
      "network",
      "c",
    ],
  );
});
