// Networks of a test's own for the CNI tests: a network name (also the marker the plugins put in
// their iptables comments), a bridge name and a /24 picked at random (test files run in
// parallel), a conflist whose host-local leases live under the temp root, and a sweep that
// removes the bridge, every iptables rule naming the network or an address of its subnet and the
// per-container chains those rules used, whatever state a failing test left. Leak checks: veths on the bridge, leases,
// iptables lines.
import * as fs from "node:fs";
import * as path from "node:path";
import { iptablesLines, sweepIptables } from "@tsrunc/daemon/testing/iptables-sweep";
import { execaSync } from "execa";

export interface TestNetwork {
  name: string;
  bridge: string;
  prefix: string;
  subnet: string;
  /** host-local's store: <dataDir>/<name>/<ip> per lease. */
  dataDir: string;
  conflist(extraPlugins?: Record<string, unknown>[]): Record<string, unknown>;
  /** Writes the conflist as <confDir>/<file>. */
  write(confDir: string, extraPlugins?: Record<string, unknown>[], file?: string): void;
  leases(): string[];
  /** Interfaces enslaved to the bridge (the containers' host-side veths). */
  veths(): string[];
  iptables(): string[];
  sweep(): void;
}

const rand = () => Math.random().toString(36).slice(2, 8);

export function testNetwork(tempRoot: string): TestNetwork {
  const tag = rand();
  const name = `tsrn-${tag}`;
  const bridge = `tsrn${tag}`;
  const prefix = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}.`;
  const dataDir = path.join(tempRoot, "cni-ipam");
  const conflist = (extra: Record<string, unknown>[] = []) => ({
    cniVersion: "1.0.0",
    name,
    plugins: [
      {
        type: "bridge",
        bridge,
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: { type: "host-local", subnet: `${prefix}0/24`, dataDir, routes: [{ dst: "0.0.0.0/0" }] },
      },
      { type: "portmap", capabilities: { portMappings: true }, snat: true },
      { type: "firewall", backend: "iptables" },
      ...extra,
    ],
  });
  return {
    name,
    bridge,
    prefix,
    subnet: `${prefix}0/24`,
    dataDir,
    conflist,
    write(confDir, extra, file = `50-${name}.conflist`) {
      fs.mkdirSync(confDir, { recursive: true });
      fs.writeFileSync(path.join(confDir, file), JSON.stringify(conflist(extra), null, 2));
    },
    leases() {
      const d = path.join(dataDir, name);
      return fs.existsSync(d) ? fs.readdirSync(d).filter((f) => /^\d/.test(f)) : [];
    },
    veths() {
      const r = execaSync("ip", ["-o", "link", "show", "master", bridge], { reject: false });
      return String(r.stdout)
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split(":")[1]?.trim().split("@")[0] ?? l);
    },
    // The firewall plugin's CNI-FORWARD rules carry no comment, only the container's address:
    // they are found by the test's subnet (" 10.x.y." after -s/-d).
    iptables: () => [...iptablesLines(name), ...iptablesLines(` ${prefix}`)],
    sweep() {
      execaSync("ip", ["link", "del", bridge], { reject: false });
      sweepIptables(name);
      sweepIptables(` ${prefix}`);
    },
  };
}
