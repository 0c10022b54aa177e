// What a container asks of the network, in its labels (tsctl run --net/-p writes them; ctr and
// nerdctl carry such settings in labels too):
//   io.tsrunc.net/networks  "bridge,mynet" | "host" | "none" (absent = none: loopback only)
//   io.tsrunc.net/ports     "8080:80/tcp,5353:53/udp"  (host port : container port [/proto])
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { checkNetworkName } from "./conf.js";
import type { PortMapping } from "./runner.js";

export const NETWORKS_LABEL = "io.tsrunc.net/networks";
export const PORTS_LABEL = "io.tsrunc.net/ports";

export interface NetRequest {
  mode: "none" | "host" | "cni";
  networks: string[];
  ports: PortMapping[];
}

const bad = (what: string) => new TtrpcError(Code.InvalidArgument, what);

function port(s: string, what: string): number {
  if (!/^[0-9]{1,5}$/.test(s)) throw bad(`invalid ${what} ${JSON.stringify(s)}`);
  const n = Number(s);
  if (n < 1 || n > 65535) throw bad(`invalid ${what} ${n}: must be 1-65535`);
  return n;
}

export function parsePort(spec: string): PortMapping {
  const m = /^(?:([0-9.]+):)?([^:/]+):([^:/]+)(?:\/(tcp|udp))?$/.exec(spec);
  if (!m) throw bad(`invalid port mapping ${JSON.stringify(spec)} (use HOSTPORT:CONTAINERPORT[/tcp|udp])`);
  const [, hostIP, host = "", ctr = "", proto] = m;
  if (hostIP !== undefined && !/^(\d{1,3})(\.\d{1,3}){3}$/.test(hostIP))
    throw bad(`invalid host address in port mapping ${JSON.stringify(spec)}`);
  return {
    hostPort: port(host, "host port"),
    containerPort: port(ctr, "container port"),
    protocol: proto === "udp" ? "udp" : "tcp",
    ...(hostIP !== undefined ? { hostIP } : {}),
  };
}

export function parseNetLabels(labels: Readonly<Record<string, string>>): NetRequest {
  const nets = (labels[NETWORKS_LABEL] ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const ports = (labels[PORTS_LABEL] ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map(parsePort);
  const special = nets.filter((n) => n === "host" || n === "none");
  if (special.length && nets.length > 1)
    throw bad(`--net ${special[0]} cannot be combined with other networks (${nets.join(",")})`);
  if (nets.length === 0 || nets[0] === "none") {
    if (ports.length) throw bad("port mappings need a network (--net bridge)");
    return { mode: "none", networks: [], ports: [] };
  }
  if (nets[0] === "host") {
    if (ports.length) throw bad("port mappings do not apply to --net host");
    return { mode: "host", networks: [], ports: [] };
  }
  if (new Set(nets).size !== nets.length) throw bad(`a network is named twice: ${nets.join(",")}`);
  if (nets.length > 8) throw bad("at most 8 networks per container");
  return { mode: "cni", networks: nets.map(checkNetworkName), ports };
}
