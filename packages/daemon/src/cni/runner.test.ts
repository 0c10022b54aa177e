// The CNI runner against Debian's real plugins (bridge, host-local, loopback, portmap,
// firewall): ADD/CHECK/DEL of 1.0.0 and 0.4.0 lists in a netns the test made, what the host
// sees (veth on the bridge, the address answering ping, the lease file, iptables rules), DEL's
// idempotence and its empty-netns form, and plugins' errors as they reach a caller.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { execa } from "execa";
import t from "tap";
import { parseConf } from "./conf.js";
import { CniPluginError } from "./errors.js";
import { parseResult } from "./result.js";
import { CniRunner } from "./runner.js";
import { inNetns, iptablesLines, makeTestNet, type TestNet } from "./test-support.js";

const binDirs = ["/usr/lib/cni", "/opt/cni/bin"];
const runner = new CniRunner({ binDirs, timeoutMs: 30_000 });

function withNet(tt: { teardown(fn: () => void): void }): TestNet {
  const net = makeTestNet();
  tt.teardown(() => net.cleanup());
  return net;
}

const leases = (net: TestNet) => {
  const d = join(net.dataDir, net.name);
  return existsSync(d) ? readdirSync(d).filter((f) => /^\d/.test(f)) : [];
};

t.test("VERSION: the plugins speak 1.0.0 and 0.4.0", async (tt) => {
  for (const p of ["bridge", "host-local", "loopback", "portmap", "firewall"]) {
    const v = await runner.version(p);
    tt.ok(
      v.supportedVersions.includes("1.0.0") && v.supportedVersions.includes("0.4.0"),
      `${p}: ${v.supportedVersions}`,
    );
  }
});

for (const version of ["1.0.0", "0.4.0"]) {
  t.test(`ADD, CHECK, DEL of a ${version} bridge + portmap + firewall list`, async (tt) => {
    const net = withNet(tt);
    const list = parseConf(
      JSON.stringify(
        net.conflist(version, [
          { type: "portmap", capabilities: { portMappings: true }, snat: true },
          { type: "firewall", backend: "iptables" },
        ]),
      ),
      "/x/10-test.conflist",
    );
    const cid = `default-${net.name}`;
    const att = {
      containerId: cid,
      netns: net.netnsPath,
      ifname: "eth0",
      capabilityArgs: {
        portMappings: [
          {
            hostPort: 40000 + Math.floor(Math.random() * 20000),
            containerPort: 80,
            protocol: "tcp" as const,
          },
        ],
      },
    };
    const { raw, result } = await runner.add(list, att);
    tt.equal(result.cniVersion, version);
    const ip = result.ips[0];
    tt.ok(ip?.address.startsWith(net.prefix), `address ${ip?.address} in ${net.subnet}`);
    tt.equal(ip?.gateway, `${net.prefix}1`);
    const eth0 = result.interfaces[ip?.interface ?? -1];
    tt.equal(eth0?.name, "eth0");
    tt.equal(eth0?.sandbox, net.netnsPath);
    if (version === "0.4.0") tt.equal((raw as { ips: Array<{ version: string }> }).ips[0]?.version, "4");
    else tt.notOk("version" in ((raw as { ips: object[] }).ips[0] ?? {}), "1.0.0 ips carry no version");
    const addr = ip?.address.split("/")[0] as string;
    const inside = await inNetns(net, "ip", ["-4", "-o", "addr", "show", "eth0"]);
    tt.match(inside.stdout, addr, "eth0 in the netns has the address");
    const ping = await execa("/bin/busybox", ["ping", "-c1", "-W2", addr], { reject: false });
    tt.equal(ping.exitCode, 0, "the host reaches the container's address");
    tt.same(leases(net), [addr], "host-local leased the address");
    tt.ok(
      iptablesLines(net.name).some((l) => l.includes("DNAT") || l.includes("dnat")),
      "portmap's DNAT rules name the network",
    );
    tt.ok(iptablesLines(net.name).length > 0);
    // CHECK without portmap: Debian's portmap 1.1.1 fails CHECK on an IPv4-only result by
    // looking for ip6tables rules it never made (containernetworking/plugins#819).
    const noPortmap = { ...list, plugins: list.plugins.filter((p) => p.type !== "portmap") };
    tt.equal(await runner.check(noPortmap, att, raw), true, "CHECK passes");

    await runner.del(list, att, raw);
    tt.same(leases(net), [], "DEL released the lease");
    tt.same(iptablesLines(net.name), [], "DEL removed every rule of the network");
    const gone = await inNetns(net, "ip", ["link", "show", "eth0"]);
    tt.not(gone.exitCode, 0, "eth0 is gone from the netns");
    await runner.del(list, att, raw);
    tt.pass("a second DEL succeeds (DEL is idempotent)");
  });
}

t.test("DEL with an empty netns path (the namespace is gone) releases the lease", async (tt) => {
  const net = withNet(tt);
  const list = parseConf(JSON.stringify(net.conflist("1.0.0")), "/x/a.conflist");
  const att = { containerId: `default-${net.name}`, netns: net.netnsPath, ifname: "eth0" };
  const { raw } = await runner.add(list, att);
  tt.equal(leases(net).length, 1);
  await runner.del(list, { ...att, netns: "" }, raw);
  tt.same(leases(net), []);
});

t.test("loopback: a .conf file brings lo up", async (tt) => {
  const net = withNet(tt);
  const list = parseConf(
    JSON.stringify({ cniVersion: "1.0.0", name: net.name, type: "loopback" }),
    "/x/99-lo.conf",
  );
  tt.equal(list.plugins.length, 1);
  const att = { containerId: `default-${net.name}`, netns: net.netnsPath, ifname: "lo" };
  await runner.add(list, att);
  const up = await inNetns(net, "ip", ["-o", "link", "show", "lo"]);
  tt.match(up.stdout, /UP/);
  await runner.del(list, att);
});

t.test("a plugin's error reaches the caller with its CNI code and message", async (tt) => {
  const net = withNet(tt);
  const broken = net.conflist("1.0.0");
  const bridge = (broken.plugins as Array<{ ipam: { subnet: string } }>)[0];
  if (bridge) bridge.ipam.subnet = "not-a-subnet";
  const list = parseConf(JSON.stringify(broken), "/x/b.conflist");
  const att = { containerId: `default-${net.name}`, netns: net.netnsPath, ifname: "eth0" };
  const err = await runner.add(list, att).catch((e: unknown) => e);
  tt.type(err, CniPluginError);
  const e = err as CniPluginError;
  tt.equal(e.plugin, "bridge");
  tt.ok(e.body.code > 0, `code ${e.body.code}`);
  tt.match(e.message, /not-a-subnet|invalid CIDR/i, e.message);
  tt.match(e.message, new RegExp(`network "${net.name}"`));
  await runner.del(list, { ...att, netns: "" }).catch(() => {});
  tt.same(iptablesLines(net.name), []);
});

t.test("a missing plugin is NotFound naming the directories", async (tt) => {
  const net = withNet(tt);
  const list = parseConf(
    JSON.stringify({ cniVersion: "1.0.0", name: net.name, plugins: [{ type: "no-such-plugin" }] }),
    "/x/c.conflist",
  );
  const err = await runner
    .add(list, { containerId: "x", netns: net.netnsPath, ifname: "eth0" })
    .catch((e: unknown) => e);
  tt.ok(err instanceof TtrpcError && err.code === Code.NotFound, String(err));
  tt.match((err as Error).message, /no-such-plugin.*\/usr\/lib\/cni/);
});

t.test("result parsing: 0.2.0 ip4 objects, 1.0.0 lists, malformed results", async (tt) => {
  const old = parseResult({ cniVersion: "0.2.0", ip4: { ip: "10.1.0.2/24", gateway: "10.1.0.1" } }, "0.2.0");
  tt.same(old.ips, [{ address: "10.1.0.2/24", gateway: "10.1.0.1" }]);
  const v1 = parseResult(
    {
      cniVersion: "1.0.0",
      interfaces: [{ name: "eth0", sandbox: "/x" }],
      ips: [{ address: "10.1.0.2/24", interface: 0 }],
      dns: { nameservers: ["10.1.0.1"] },
    },
    "1.0.0",
  );
  tt.equal(v1.interfaces[0]?.name, "eth0");
  tt.same(v1.dns, { nameservers: ["10.1.0.1"] });
  tt.throws(() => parseResult({ cniVersion: "1.0.0", ips: [{ address: "x", interface: 3 }] }, "1.0.0"));
  tt.throws(() => parseResult({ cniVersion: "9.9.9" }, "1.0.0"));
  tt.throws(() => parseConf("{", "/x/d.conflist"), /not JSON/);
  tt.throws(
    () => parseConf('{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"../x"}]}', "/x/e.conflist"),
    /invalid plugin type/,
  );
});
