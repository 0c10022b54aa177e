// CNI results: what ADD prints, normalized to one shape whatever version the plugin spoke.
// 1.0.0 dropped the per-IP "version" field that 0.3.x/0.4.0 carry; 0.1.0/0.2.0 had ip4/ip6
// objects instead of lists. The raw result is what the next plugin gets as prevResult (it is
// already in the list's cniVersion); this shape is what we store and show.
import { Code, TtrpcError } from "@tsrunc/ttrpc";

export interface CniInterface {
  name: string;
  mac?: string;
  sandbox?: string;
}

export interface CniIp {
  /** CIDR, e.g. 10.4.0.2/24. */
  address: string;
  gateway?: string;
  /** Index into interfaces, when the plugin said which. */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

export interface CniResult {
  cniVersion: string;
  interfaces: CniInterface[];
  ips: CniIp[];
  routes: CniRoute[];
  dns?: { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] };
}

/**
 * Versions we speak; anything else is refused as the spec's code 1 would be. 1.1.0 added the
 * STATUS and GC verbs and optional result fields (mtu, route attributes), read like 1.0.0's.
 */
export const resultVersions = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;

const bad = (what: string) => new TtrpcError(Code.Unknown, `CNI result: ${what}`);

const str = (v: unknown): v is string => typeof v === "string";

function obj(v: unknown, what: string): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw bad(`${what} is not an object`);
  return v as Record<string, unknown>;
}

function list(v: unknown, what: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw bad(`${what} is not a list`);
  return v;
}

function routes(v: unknown): CniRoute[] {
  return list(v, "routes").map((r) => {
    const o = obj(r, "route");
    if (!str(o.dst)) throw bad("route without dst");
    return { dst: o.dst, ...(str(o.gw) ? { gw: o.gw } : {}) };
  });
}

function dns(v: unknown): CniResult["dns"] {
  if (v === undefined || v === null) return undefined;
  const o = obj(v, "dns");
  const strs = (x: unknown) => list(x, "dns list").filter(str);
  const out: NonNullable<CniResult["dns"]> = {};
  if (o.nameservers) out.nameservers = strs(o.nameservers);
  if (str(o.domain)) out.domain = o.domain;
  if (o.search) out.search = strs(o.search);
  if (o.options) out.options = strs(o.options);
  return Object.keys(out).length ? out : undefined;
}

/** Parses a plugin's ADD output (any supported version) into the normalized shape. */
export function parseResult(raw: unknown, confVersion: string): CniResult {
  const o = obj(raw, "result");
  // A result may omit cniVersion only in the oldest versions; the conf's version is what the
  // plugin was asked to speak.
  const version = str(o.cniVersion) ? o.cniVersion : confVersion;
  if (!(resultVersions as readonly string[]).includes(version))
    throw bad(`unsupported result version ${JSON.stringify(version)}`);
  if (version === "0.1.0" || version === "0.2.0") {
    const ips: CniIp[] = [];
    const rs: CniRoute[] = [];
    for (const key of ["ip4", "ip6"]) {
      if (o[key] === undefined || o[key] === null) continue;
      const ip = obj(o[key], key);
      if (!str(ip.ip)) throw bad(`${key} without ip`);
      ips.push({ address: ip.ip, ...(str(ip.gateway) ? { gateway: ip.gateway } : {}) });
      rs.push(...routes(ip.routes));
    }
    const d = dns(o.dns);
    return { cniVersion: version, interfaces: [], ips, routes: rs, ...(d ? { dns: d } : {}) };
  }
  const interfaces = list(o.interfaces, "interfaces").map((i) => {
    const x = obj(i, "interface");
    if (!str(x.name)) throw bad("interface without name");
    return {
      name: x.name,
      ...(str(x.mac) ? { mac: x.mac } : {}),
      ...(str(x.sandbox) && x.sandbox !== "" ? { sandbox: x.sandbox } : {}),
    };
  });
  const ips = list(o.ips, "ips").map((i) => {
    const x = obj(i, "ip");
    if (!str(x.address)) throw bad("ip without address");
    const idx = typeof x.interface === "number" && Number.isInteger(x.interface) ? x.interface : undefined;
    if (idx !== undefined && (idx < 0 || idx >= interfaces.length)) throw bad(`ip names interface ${idx}`);
    return {
      address: x.address,
      ...(str(x.gateway) ? { gateway: x.gateway } : {}),
      ...(idx !== undefined ? { interface: idx } : {}),
    };
  });
  const d = dns(o.dns);
  return { cniVersion: version, interfaces, ips, routes: routes(o.routes), ...(d ? { dns: d } : {}) };
}

/** Compares dotted versions ("0.4.0" < "1.0.0"). */
export function versionAtLeast(v: string, min: string): boolean {
  const a = v.split(".").map(Number);
  const b = min.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}
