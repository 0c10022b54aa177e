// tsctl run --net NAME (repeatable) and -p/--publish HOSTPORT:CONTAINERPORT[/tcp|udp]: carried
// to tsruncd in the container's labels (the daemon's CNI runner reads them at task create).
//   --net none  (the default, as ctr) a network namespace of its own with loopback only
//   --net host  the host's network namespace: no namespace in the spec, no CNI
//   --net NAME  a CNI network from tsruncd's conf dir; `bridge` is written by tsruncd if absent
import { UsageError } from "./args.js";

export const NETWORKS_LABEL = "io.tsrunc.net/networks";
export const PORTS_LABEL = "io.tsrunc.net/ports";

export interface NetOptions {
  networks: string[];
  ports: string[];
}

const portRule = /^(?:\d{1,3}(?:\.\d{1,3}){3}:)?\d{1,5}:\d{1,5}(?:\/(?:tcp|udp))?$/;
const nameRule = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function parseNetOptions(nets: readonly string[], ports: readonly string[]): NetOptions {
  const networks = nets.flatMap((n) => n.split(",")).map((n) => n.trim());
  for (const n of networks) if (!nameRule.test(n)) throw new UsageError(`invalid --net ${JSON.stringify(n)}`);
  const special = networks.find((n) => n === "host" || n === "none");
  if (special && networks.length > 1)
    throw new UsageError(`--net ${special} cannot be combined with other networks`);
  for (const p of ports)
    if (!portRule.test(p))
      throw new UsageError(`invalid -p ${JSON.stringify(p)} (use HOSTPORT:CONTAINERPORT[/tcp|udp])`);
  if (ports.length && (networks.length === 0 || special))
    throw new UsageError("-p needs a CNI network (e.g. --net bridge)");
  return { networks, ports: [...ports] };
}

/** The labels that carry the options (none for the default). */
export function netLabels(o: NetOptions): Record<string, string> {
  const out: Record<string, string> = {};
  if (o.networks.length) out[NETWORKS_LABEL] = o.networks.join(",");
  if (o.ports.length) out[PORTS_LABEL] = o.ports.join(",");
  return out;
}

/** --net host: the spec keeps the host's network namespace. */
export function applyHostNetwork<S extends { linux?: { namespaces?: Array<{ type: string }> } }>(
  spec: S,
  o: NetOptions,
): S {
  if (o.networks[0] === "host" && spec.linux?.namespaces)
    spec.linux.namespaces = spec.linux.namespaces.filter((n) => n.type !== "network");
  return spec;
}
