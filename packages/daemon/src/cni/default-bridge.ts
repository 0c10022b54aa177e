// `--net bridge` with no configuration of that name: tsruncd writes one, as nerdctl does for its
// default network: a bridge on a private subnet with masquerade, portmap for -p, firewall for
// the FORWARD chain. Written atomically (temp + rename) so a concurrent reader never sees half.
import { randomBytes } from "node:crypto";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

export const DEFAULT_NETWORK = "bridge";
export const DEFAULT_BRIDGE = "tsrunc0";
export const DEFAULT_SUBNET = "10.89.0.0/24";
export const DEFAULT_CONF_FILE = "10-tsrunc-bridge.conflist";

export function defaultBridgeConf(): Record<string, unknown> {
  return {
    cniVersion: "1.0.0",
    name: DEFAULT_NETWORK,
    plugins: [
      {
        type: "bridge",
        bridge: DEFAULT_BRIDGE,
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: { type: "host-local", ranges: [[{ subnet: DEFAULT_SUBNET }]], routes: [{ dst: "0.0.0.0/0" }] },
      },
      { type: "portmap", capabilities: { portMappings: true } },
      { type: "firewall" },
    ],
  };
}

/** Writes the default network's file into `dir`; returns its path. */
export async function writeDefaultBridge(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const path = join(dir, DEFAULT_CONF_FILE);
  // Unique per call: two first uses at once each write their own file; the last rename wins.
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  await writeFile(tmp, `${JSON.stringify(defaultBridgeConf(), null, 2)}\n`, { mode: 0o644 });
  await rename(tmp, path);
  return path;
}
