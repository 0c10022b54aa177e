import { existsSync } from "node:fs";
import t from "tap";
import {
  isUnifiedHost,
  memoryCgroupOf,
  memoryCgroupOfPid,
  parseCgroupMounts,
  parseFlatKeyed,
  parseProcCgroup,
} from "./cgroup.js";

// This host's shape: cgroup v1 controllers (cpu and cpuacct apart) and cgroup2 at unified/.
const HYBRID_MOUNTINFO = [
  "25 20 0:22 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
  "26 25 0:23 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
  "29 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
  "33 25 0:30 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd",
  "34 25 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
].join("\n");
const HYBRID_PROC = ["9:name=systemd:/ns/c1", "4:memory:/ns/c1", "2:cpu:/ns/c1", "0::/ns/c1", ""].join("\n");

t.test("/proc/<pid>/cgroup lines", async (t) => {
  t.same(parseProcCgroup("4:memory:/a/b\n3:cpu,cpuacct:/a\n0::/x:y\n"), [
    { controllers: ["memory"], path: "/a/b" },
    { controllers: ["cpu", "cpuacct"], path: "/a" },
    { controllers: [], path: "/x:y" }, // a path may hold colons
  ]);
});

t.test("cgroup mounts from mountinfo (escaped paths, co-mounted controllers, v2)", async (t) => {
  const mounts = parseCgroupMounts(
    [
      "30 25 0:24 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct",
      "31 25 0:25 /kube /mnt/my\\040cg rw - cgroup cgroup rw,memory,clone_children",
      "32 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate",
      "33 25 0:27 / /proc rw - proc proc rw",
    ].join("\n"),
  );
  t.same(mounts, [
    { mountPoint: "/sys/fs/cgroup/cpu,cpuacct", root: "/", controllers: ["cpu", "cpuacct"], version: 1 },
    { mountPoint: "/mnt/my cg", root: "/kube", controllers: ["memory", "clone_children"], version: 1 },
    { mountPoint: "/sys/fs/cgroup", root: "/", controllers: [], version: 2 },
  ]);
});

t.test("the memory cgroup: v1 hierarchy on a hybrid host, unified otherwise", async (t) => {
  t.same(memoryCgroupOf(HYBRID_PROC, HYBRID_MOUNTINFO), { version: 1, dir: "/sys/fs/cgroup/memory/ns/c1" });
  t.same(memoryCgroupOf("0::/system.slice/x.scope\n", "40 1 0:30 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw"), {
    version: 2,
    dir: "/sys/fs/cgroup/system.slice/x.scope",
  });
  // A mount that shows a sub-tree (cgroup namespace, bind mount): paths are relative to its root.
  t.same(
    memoryCgroupOf("4:memory:/kube/pod/c1\n", "29 25 0:26 /kube /cg/memory rw - cgroup cgroup rw,memory"),
    { version: 1, dir: "/cg/memory/pod/c1" },
  );
  t.equal(
    memoryCgroupOf("4:memory:/other/c1\n", "29 25 0:26 /kube /cg/memory rw - cgroup cgroup rw,memory"),
    undefined,
    "outside the mount: unreachable",
  );
  t.equal(memoryCgroupOf("2:cpu:/x\n", HYBRID_MOUNTINFO), undefined, "no memory line");
});

t.test("on this host: our own memory cgroup, and nothing for a pid that does not exist", async (t) => {
  const mine = memoryCgroupOfPid(process.pid);
  t.ok(mine, "found");
  t.ok(existsSync(`${mine?.dir}/${mine?.version === 1 ? "memory.oom_control" : "memory.events"}`));
  t.equal(mine?.version, isUnifiedHost() ? 2 : existsSync("/sys/fs/cgroup/memory") ? 1 : 2);
  t.equal(memoryCgroupOfPid(2 ** 22 + 1), undefined);
});

t.test("flat keyed files", async (t) => {
  t.same(parseFlatKeyed("oom_kill_disable 0\nunder_oom 1\noom_kill 3\n"), {
    oom_kill_disable: 0,
    under_oom: 1,
    oom_kill: 3,
  });
  t.same(parseFlatKeyed("low 0\nhigh 5\nbad x\n\n"), { low: 0, high: 5 });
});
