// For the CNI tests: a network namespace, a bridge name, a subnet and a network name of the
// test's own (tests run in parallel files), and a teardown that removes every one of them and
// every iptables rule that names the network, whatever state the test left them in.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa, execaSync } from "execa";
import { sweepIptables } from "../testing/iptables-sweep.js";

export { iptablesLines } from "../testing/iptables-sweep.js";

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

/** Runs a command inside the test's netns. */
export function inNetns(net: TestNet, cmd: string, args: string[]) {
  return execa("ip", ["netns", "exec", net.netnsName, cmd, ...args], { reject: false });
}
