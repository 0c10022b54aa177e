// Networks of a test's own for the CNI tests: a network name (also the marker the plugins put in
// their iptables comments), a bridge name and a /24 picked at random (test files run in
// parallel), a conflist whose host-local leases live under the temp root, and a sweep that
// removes the bridge, every iptables rule naming the network and the per-container chains those
// rules used, whatever state a failing test left. Leak checks: veths on the bridge, leases,
// iptables lines.
import * as fs from "node:fs";
import * as path from "node:path";
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
    iptables: () => iptablesLines(name),
    sweep() {
      execaSync("ip", ["link", "del", bridge], { reject: false });
      sweepIptables(name);
    },
  };
}

/** iptables-save lines (nat and filter) that mention `marker`. */
export function iptablesLines(marker: string): string[] {
  const out: string[] = [];
  for (const table of ["nat", "filter"]) {
    const r = execaSync("iptables-save", ["-t", table], { reject: false });
    for (const l of String(r.stdout).split("\n")) if (l.includes(marker)) out.push(`${table} ${l}`);
  }
  return out;
}

/** An iptables-save rule as argv (double quotes with backslash escapes, as it writes them). */
function splitRule(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  let any = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quoted) {
      if (c === "\\" && i + 1 < line.length) cur += line[++i];
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = true;
      any = true;
    } else if (c === " ") {
      if (any || cur) out.push(cur);
      cur = "";
      any = false;
    } else cur += c;
  }
  if (any || cur) out.push(cur);
  return out;
}

/** Deletes every rule naming `marker`, then the per-container chains those rules used. */
export function sweepIptables(marker: string): void {
  for (const table of ["nat", "filter"]) {
    const r = execaSync("iptables-save", ["-t", table], { reject: false });
    const chains = new Set<string>();
    for (const l of String(r.stdout).split("\n")) {
      if (!l.startsWith("-A ") || !l.includes(marker)) continue;
      const argv = splitRule(l);
      for (const a of argv) if (/^CNI-(DN-|SN-)?[0-9a-f]{20,}$/.test(a)) chains.add(a);
      execaSync("iptables", ["-w", "-t", table, "-D", ...argv.slice(1)], { reject: false });
    }
    for (const c of chains) {
      execaSync("iptables", ["-w", "-t", table, "-F", c], { reject: false });
      execaSync("iptables", ["-w", "-t", table, "-X", c], { reject: false });
    }
  }
}
