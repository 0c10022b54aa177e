// The spec builder against containerd's defaults (oci/spec.go, oci/mounts.go, spec_opts.go).

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OciSpecType, packAny, unpackAnyAs } from "@tsrunc/protocol";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import t from "tap";
import { KNOWN_CAPABILITIES } from "./capabilities.js";
import {
  buildSpec,
  DEFAULT_MASKED_PATHS,
  DEFAULT_PATH_ENV,
  DEFAULT_READONLY_PATHS,
  defaultUnixCaps,
  defaultUnixSpec,
  execProcess,
} from "./spec.js";
import { parseMountFlag } from "./spec-options.js";

t.test("the default Unix spec is containerd's", async (t) => {
  const s = defaultUnixSpec("ns1", "web");
  t.equal(s.ociVersion, "1.0.2-dev");
  t.same(s.root, { path: "rootfs" });
  t.equal(s.process.cwd, "/");
  t.equal(s.process.noNewPrivileges, true);
  t.same(s.process.user, { uid: 0, gid: 0 });
  t.same(s.process.rlimits, [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }]);
  t.equal(defaultUnixCaps().length, 14);
  t.same(s.process.capabilities?.bounding, defaultUnixCaps());
  t.same(s.process.capabilities?.effective, defaultUnixCaps());
  t.same(s.process.capabilities?.permitted, defaultUnixCaps());
  t.equal(s.process.capabilities?.inheritable, undefined, "no inheritable set (CVE-2022-24769)");
  t.same(
    s.mounts.map((m) => [m.destination, m.type, m.source]),
    [
      ["/proc", "proc", "proc"],
      ["/dev", "tmpfs", "tmpfs"],
      ["/dev/pts", "devpts", "devpts"],
      ["/dev/shm", "tmpfs", "shm"],
      ["/dev/mqueue", "mqueue", "mqueue"],
      ["/sys", "sysfs", "sysfs"],
      ["/run", "tmpfs", "tmpfs"],
    ],
  );
  t.same(s.mounts[2]?.options, ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]);
  t.same(s.mounts[5]?.options, ["nosuid", "noexec", "nodev", "ro"]);
  t.equal(s.linux.cgroupsPath, "/ns1/web");
  t.same(
    s.linux.namespaces?.map((n) => n.type),
    ["pid", "ipc", "uts", "mount", "network"],
  );
  t.same(s.linux.maskedPaths, DEFAULT_MASKED_PATHS);
  t.same(s.linux.readonlyPaths, DEFAULT_READONLY_PATHS);
  t.same(s.linux.resources?.devices, [{ allow: false, access: "rwm" }]);
  t.equal(s.process.args, undefined);
});

t.test("a bad id or namespace never reaches a path", async (t) => {
  t.throws(() => defaultUnixSpec("ns", "../etc"), { code: Code.InvalidArgument });
  t.throws(() => defaultUnixSpec("a/b", "x"), { code: Code.InvalidArgument });
  t.throws(() => defaultUnixSpec("ns", "x".repeat(77)), { code: Code.InvalidArgument });
});

t.test("buildSpec applies run's options", async (t) => {
  const s = buildSpec({
    namespace: "default",
    id: "c1",
    args: ["sh", "-c", "echo hi"],
    env: ["FOO=bar", "PATH=/bin"],
    cwd: "/tmp",
    hostname: "box",
    readOnly: true,
    rootfs: "/srv/rootfs",
    mounts: [parseMountFlag("type=bind,src=/data,dst=/data,options=rbind:ro")],
    annotations: { team: "a" },
  });
  t.same(s.process.args, ["sh", "-c", "echo hi"]);
  t.same(s.process.env, ["PATH=/bin", "FOO=bar"], "PATH override replaces the default in place");
  t.equal(s.process.cwd, "/tmp");
  t.equal(s.hostname, "box");
  t.same(s.root, { path: "/srv/rootfs", readonly: true });
  t.same(s.mounts.at(-1), { destination: "/data", type: "bind", source: "/data", options: ["rbind", "ro"] });
  t.same(s.annotations, { team: "a" });
  t.equal(s.process.terminal, undefined);
  // WithDefaultUnixDevices: deny-all first, then the nine allowed character devices.
  const devs = s.linux.resources?.devices ?? [];
  t.same(devs[0], { allow: false, access: "rwm" });
  t.equal(devs.length, 10);
  t.ok(
    devs.some((d) => d.major === 1 && d.minor === 3 && d.allow),
    "/dev/null allowed",
  );
  t.ok(
    devs.some((d) => d.major === 136 && d.minor === undefined),
    "all of /dev/pts allowed",
  );
});

t.test("PATH is set by default and can be unset", async (t) => {
  t.same(buildSpec({ namespace: "n", id: "i" }).process.env, [DEFAULT_PATH_ENV]);
  t.same(buildSpec({ namespace: "n", id: "i", env: ["PATH", "A=1"] }).process.env, ["A=1"]);
});

t.test("tty sets terminal and TERM=xterm (once)", async (t) => {
  const s = buildSpec({ namespace: "n", id: "i", tty: true });
  t.equal(s.process.terminal, true);
  t.same(s.process.env, [DEFAULT_PATH_ENV, "TERM=xterm"]);
  const own = buildSpec({ namespace: "n", id: "i", tty: true, env: ["TERM=vt100"] });
  t.same(own.process.env, [DEFAULT_PATH_ENV, "TERM=vt100"]);
});

t.test("privileged: caller's caps, nothing masked, writable sysfs, all devices", async (t) => {
  const s = buildSpec({ namespace: "n", id: "i", privileged: true, hostDevices: false });
  const caps = s.process.capabilities?.bounding ?? [];
  t.ok(caps.length > 0);
  for (const c of caps) t.ok(KNOWN_CAPABILITIES.includes(c), c);
  t.same(s.process.capabilities?.effective, caps);
  t.equal(s.linux.maskedPaths, undefined);
  t.equal(s.linux.readonlyPaths, undefined);
  t.same(s.mounts.find((m) => m.type === "sysfs")?.options, ["nosuid", "noexec", "nodev", "rw"]);
  t.same(s.linux.resources?.devices, [{ allow: true, access: "rwm" }]);
  t.equal(s.linux.devices, undefined);
  const withDevs = buildSpec({ namespace: "n", id: "i", privileged: true });
  t.ok((withDevs.linux.devices ?? []).some((d) => d.path === "/dev/null" && d.type === "c"));
  t.notOk((withDevs.linux.devices ?? []).some((d) => d.path.startsWith("/dev/pts/")));
});

t.test("user UID[:GID], with names and groups from the rootfs", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "tsctl-rootfs-"));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, "etc"));
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\nalice:x:1000:100::/home/a:/bin/sh\n");
  writeFileSync(join(root, "etc/group"), "root:x:0:\nusers:x:100:\nwheel:x:10:alice,bob\n");
  const user = (u: string, rootfs: string | null = root) =>
    buildSpec({ namespace: "n", id: "i", user: u, ...(rootfs !== null ? { rootfs } : {}) }).process.user;
  t.same(user("1000:50"), { uid: 1000, gid: 50, additionalGids: [10] });
  t.same(user("1000"), { uid: 1000, gid: 100, additionalGids: [10] }, "primary group from /etc/passwd");
  t.same(user("4242"), { uid: 4242, gid: 4242 }, "unknown uid: gid = uid, as containerd");
  t.same(user("alice"), { uid: 1000, gid: 100, additionalGids: [10] });
  t.same(user("alice:wheel"), { uid: 1000, gid: 10, additionalGids: [10] });
  t.same(user("7:8", null), { uid: 7, gid: 8 });
  t.throws(() => user("mallory"), { code: Code.InvalidArgument });
  t.throws(() => user("alice", null), /no user "alice"/);
  t.throws(() => user("1:2:3"), { code: Code.InvalidArgument });
  t.throws(() => user(":5"), { code: Code.InvalidArgument });
});

t.test("a rootfs /etc/passwd symlinked out of the rootfs is not read", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "tsctl-rootfs-"));
  const outside = mkdtempSync(join(tmpdir(), "tsctl-outside-"));
  t.teardown(() => {
    rmSync(root, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  });
  writeFileSync(join(outside, "passwd"), "evil:x:0:0::/:/bin/sh\n");
  const { symlinkSync } = await import("node:fs");
  mkdirSync(join(root, "etc"));
  symlinkSync(join(outside, "passwd"), join(root, "etc/passwd"));
  t.throws(() => buildSpec({ namespace: "n", id: "i", rootfs: root, user: "evil" }), TtrpcError);
});

t.test("the spec packs into containerd's Any and back", async (t) => {
  const s = buildSpec({ namespace: "n", id: "i", args: ["true"] });
  const any = packAny(OciSpecType, s);
  t.equal(any.typeUrl, "types.containerd.io/opencontainers/runtime-spec/1/Spec");
  t.same(unpackAnyAs(any, OciSpecType), s);
});

t.test("exec process derives from the container's process", async (t) => {
  const s = buildSpec({ namespace: "n", id: "i", args: ["sleep", "inf"], env: ["A=1"], cwd: "/srv" });
  const p = execProcess(s, { args: ["ps"], tty: true, cwd: "/tmp", env: ["B=2"] });
  t.same(p.args, ["ps"]);
  t.equal(p.terminal, true);
  t.equal(p.cwd, "/tmp");
  t.same(p.env, [DEFAULT_PATH_ENV, "A=1", "B=2", "TERM=xterm"]);
  t.same(p.capabilities, s.process.capabilities);
  t.same(s.process.args, ["sleep", "inf"], "the container's spec is not changed");
  const plain = execProcess(s, { args: ["id"], user: "5:6" });
  t.equal(plain.terminal, false);
  t.same(plain.user, { uid: 5, gid: 6 });
  t.equal(plain.cwd, "/srv");
});
