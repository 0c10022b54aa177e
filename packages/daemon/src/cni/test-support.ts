// For the CNI tests: a network namespace, a bridge name, a subnet and a network name of the
// test's own (tests run in parallel files), and a teardown that removes every one of them and
// every iptables rule that names the network, whatever state the test left them in.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa, execaSync } from "execa";

export interface TestNet {
  /** The network name: also the marker in the plugins' iptables comments. */
  name: string;
  bridge: string;
  /** x.y.z.0/24 */
  subnet: string;
  /** x.y.z. */
  prefix: string;
  netnsName: string;
  netnsPath: string;
  dir: string;
  dataDir: string;
  conflist(version: string, extra?: Record<string, unknown>[]): Record<string, unknown>;
  cleanup(): void;
}

const rand = () => Math.random().toString(36).slice(2, 8);

export function makeTestNet(): TestNet {
  const tag = rand();
  const name = `tsrt-${tag}`;
  const bridge = `tsrb${tag}`;
  // 10.200-249.x.0/24: away from the defaults (10.88, 10.4) and picked at random per test.
  const prefix = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}.`;
  const netnsName = `tsrt-${tag}`;
  execaSync("ip", ["netns", "add", netnsName]);
  const dir = mkdtempSync(join(tmpdir(), "tsrt-cni-"));
  const dataDir = join(dir, "ipam");
  const net: TestNet = {
    name,
    bridge,
    subnet: `${prefix}0/24`,
    prefix,
    netnsName,
    netnsPath: `/run/netns/${netnsName}`,
    dir,
    dataDir,
    conflist: (version, extra = []) => ({
      cniVersion: version,
      name,
      plugins: [
        {
          type: "bridge",
          bridge,
          isGateway: true,
          ipMasq: true,
          ipam: { type: "host-local", subnet: `${prefix}0/24`, dataDir, routes: [{ dst: "0.0.0.0/0" }] },
        },
        ...extra,
      ],
    }),
    cleanup: () => {
      execaSync("ip", ["netns", "del", netnsName], { reject: false });
      execaSync("ip", ["link", "del", bridge], { reject: false });
      sweepIptables(name);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return net;
}

/** Splits an iptables-save rule into argv (double quotes with backslash escapes, as it writes them). */
export function splitRule(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inQ = false;
  let has = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (inQ) {
      if (c === "\\" && i + 1 < line.length) cur += line[++i];
      else if (c === '"') inQ = false;
      else cur += c;
    } else if (c === '"') {
      inQ = true;
      has = true;
    } else if (c === " ") {
      if (has || cur) out.push(cur);
      cur = "";
      has = false;
    } else cur += c;
  }
  if (has || cur) out.push(cur);
  return out;
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

/** Runs a command inside the test's netns. */
export function inNetns(net: TestNet, cmd: string, args: string[]) {
  return execa("ip", ["netns", "exec", net.netnsName, cmd, ...args], { reject: false });
}
