// The network manager in-process with Debian's plugins: plan (labels → loaded lists, the default
// bridge written on first use), attach into the netns of a live process (recorded, pinned,
// ADD), detach (DEL, unpin, row gone), and a failed attach that leaves nothing behind.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { execa } from "execa";
import { pino } from "pino";
import t from "tap";
import { openSqlite } from "../sqlite.js";
import { migrate } from "../store/migrations.js";
import { DEFAULT_CONF_FILE } from "./default-bridge.js";
import { NETWORKS_LABEL, PORTS_LABEL } from "./labels.js";
import { isPinned, unpinNetns } from "./netns-pin.js";
import { NetworkManager } from "./network-manager.js";
import { iptablesLines, makeTestNet } from "./test-support.js";

async function harness(tt: { teardown(fn: () => unknown): void }) {
  const net = makeTestNet();
  const dir = mkdtempSync(join(tmpdir(), "tsrunc-netmgr-"));
  const db = openSqlite(":memory:");
  migrate(db, ":memory:");
  const confDir = join(dir, "net.d");
  const mgr = new NetworkManager(db, {
    confDir,
    binDirs: ["/usr/lib/cni"],
    pinDir: join(dir, "netns"),
    log: pino({ level: "silent" }),
  });
  // A process in the test's netns: what a container's init is to the daemon.
  const sleeper = execa("ip", ["netns", "exec", net.netnsName, "sleep", "300"], { reject: false });
  tt.teardown(async () => {
    sleeper.kill("SIGKILL");
    await sleeper;
    for (const id of ["c1", "c2"]) await unpinNetns(join(dir, "netns", "default", id)).catch(() => {});
    db.close();
    net.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  const pid = sleeper.pid as number;
  const leases = () => {
    const d = join(net.dataDir, net.name);
    return existsSync(d) ? readdirSync(d).filter((f) => /^\d/.test(f)) : [];
  };
  return { net, dir, confDir, mgr, pid, leases };
}

t.test("plan: none and host need no CNI; bridge is written on first use; unknown is NotFound", async (tt) => {
  const { mgr, confDir } = await harness(tt);
  tt.equal(await mgr.plan("default", "c1", {}), undefined);
  tt.equal(await mgr.plan("default", "c1", { [NETWORKS_LABEL]: "host" }), undefined);
  const plan = await mgr.plan("default", "c1", { [NETWORKS_LABEL]: "bridge", [PORTS_LABEL]: "8080:80" });
  tt.ok(existsSync(join(confDir, DEFAULT_CONF_FILE)), "the default bridge's file is written");
  tt.same(
    plan?.nets[0]?.conf.plugins.map((p) => p.type),
    ["bridge", "portmap", "firewall"],
  );
  tt.equal(plan?.cniId, "default-c1");
  tt.equal(plan?.nets[0]?.ifname, "eth0");
  tt.same(plan?.ports, [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }]);
  const err = await mgr.plan("default", "c1", { [NETWORKS_LABEL]: "nope" }).catch((e: unknown) => e);
  tt.ok(err instanceof TtrpcError && err.code === Code.NotFound, String(err));
});

t.test("attach then detach: recorded, pinned, added; then nothing left", async (tt) => {
  const { net, confDir, mgr, pid, leases } = await harness(tt);
  await execa("mkdir", ["-p", confDir]);
  writeFileSync(
    join(confDir, "50-t.conflist"),
    JSON.stringify(net.conflist("1.0.0", [{ type: "portmap", capabilities: { portMappings: true } }])),
  );
  const plan = await mgr.plan("default", "c1", { [NETWORKS_LABEL]: net.name, [PORTS_LABEL]: "41234:80" });
  if (!plan) throw new Error("no plan");
  await mgr.attach("default", "c1", pid, plan);
  const row = mgr.store.find("default", "c1");
  tt.equal(row?.phase, "attached");
  tt.ok(row && (await isPinned(row.netns)), "the netns is pinned");
  const st = mgr.status("default", "c1") as { networks: Array<{ ips: Array<{ address: string }> }> };
  tt.ok(st.networks[0]?.ips[0]?.address.startsWith(net.prefix));
  tt.equal(leases().length, 1);
  tt.ok(iptablesLines(net.name).length > 0);
  tt.equal(await mgr.detach("default", "c1"), true);
  tt.equal(mgr.store.find("default", "c1"), undefined, "the row is gone");
  tt.notOk(row && (await isPinned(row.netns)), "unpinned");
  tt.same(leases(), []);
  tt.same(iptablesLines(net.name), []);
  tt.equal(await mgr.detach("default", "c1"), true, "detach of nothing is fine");
});

t.test("a failed ADD is undone and leaves no row, pin, lease or rule", async (tt) => {
  const { net, confDir, mgr, pid, leases } = await harness(tt);
  await execa("mkdir", ["-p", confDir]);
  writeFileSync(
    join(confDir, "50-t.conflist"),
    JSON.stringify(net.conflist("1.0.0", [{ type: "tsrunc-no-such-plugin" }])),
  );
  const plan = await mgr.plan("default", "c2", { [NETWORKS_LABEL]: net.name });
  if (!plan) throw new Error("no plan");
  await tt.rejects(mgr.attach("default", "c2", pid, plan), /tsrunc-no-such-plugin.*not found/);
  tt.equal(mgr.store.find("default", "c2"), undefined, "no row: the missing plugin never ran ADD");
  tt.same(leases(), [], "the bridge's ADD was undone");
  tt.same(iptablesLines(net.name), []);
});

t.test("CNI 1.1.0: STATUS before a plan is accepted, GC told of our attachments", async (tt) => {
  const { dir, confDir, mgr, pid } = await harness(tt);
  // Debian's plugins stop at 1.0.0: a recording plugin of our own speaks 1.1.0.
  const bin = join(dir, "bin");
  const log = join(dir, "calls.log");
  const notReady = join(dir, "not-ready");
  await execa("mkdir", ["-p", bin, confDir]);
  writeFileSync(
    join(bin, "tsrunc-recorder"),
    `#!/bin/sh\nconf=$(cat)\nprintf '%s %s\\n' "$CNI_COMMAND" "$conf" >>${log}\ncase "$CNI_COMMAND" in\n` +
      `STATUS) if [ -e ${notReady} ]; then echo '{"cniVersion":"1.1.0","code":50,"msg":"no uplink yet"}'; exit 1; fi ;;\n` +
      `ADD) echo '{"cniVersion":"1.1.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"10.9.9.9/24","interface":0}]}' ;;\n` +
      "esac\n",
    { mode: 0o755 },
  );
  const db = openSqliteMigrated();
  tt.teardown(() => db.close());
  const mgr11 = new NetworkManager(db, { ...mgr.opts, binDirs: [bin] });
  writeFileSync(
    join(confDir, "70-rec.conflist"),
    JSON.stringify({
      cniVersion: "1.0.0",
      cniVersions: ["1.0.0", "1.1.0"],
      name: "rec",
      plugins: [{ type: "tsrunc-recorder" }],
    }),
  );
  writeFileSync(notReady, "");
  const err = await mgr11.plan("default", "c1", { [NETWORKS_LABEL]: "rec" }).catch((e: unknown) => e);
  tt.match(String(err), /no uplink yet.*CNI code 50/, "a plugin not ready fails the plan");
  rmSync(notReady);
  const plan = await mgr11.plan("default", "c1", { [NETWORKS_LABEL]: "rec" });
  tt.equal(plan?.nets[0]?.conf.cniVersion, "1.1.0", "cniVersions: the highest we speak");
  if (!plan) throw new Error("no plan");
  await mgr11.attach("default", "c1", pid, plan);
  tt.same(await mgr11.gc(), ["rec"]);
  const gcLine = readFileSync(log, "utf8")
    .split("\n")
    .find((l) => l.startsWith("GC "));
  tt.same(JSON.parse(gcLine?.slice(3) ?? "{}")["cni.dev/valid-attachments"], [
    { containerID: "default-c1", ifname: "eth0" },
  ]);
  tt.equal(await mgr11.detach("default", "c1"), true);
});

function openSqliteMigrated() {
  const db = openSqlite(":memory:");
  migrate(db, ":memory:");
  return db;
}
