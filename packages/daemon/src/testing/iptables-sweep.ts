// The iptables sweep of the CNI tests (packages/daemon's own and test/'s): the rules the plugins
// left that name a network (the marker they put in their comments), and their removal with the
// per-container chains those rules used, whatever state a failing test left. Exported as
// @tsrunc/daemon/testing/iptables-sweep; tsruncd itself does not use it.
import { execaSync } from "execa";

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
