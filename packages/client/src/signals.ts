// Signal names and numbers as the host knows them ("TERM", "SIGTERM", "sigterm" and "15" are
// the same signal), for Tasks.Kill and for reporting how a process died.

import { constants } from "node:os";

const byName = constants.signals as Readonly<Record<string, number>>;

/** The signal number for a name ("SIGKILL", "kill") or a number (9, "9"); throws when unknown. */
export function parseSignal(sig: string | number): number {
  if (typeof sig === "number") {
    if (Number.isInteger(sig) && Object.values(byName).includes(sig)) return sig;
    throw new RangeError(`unknown signal ${sig}`);
  }
  const s = sig.trim();
  if (/^[0-9]+$/.test(s)) return parseSignal(Number(s));
  const upper = s.toUpperCase();
  const n = byName[upper.startsWith("SIG") ? upper : `SIG${upper}`];
  if (n === undefined) throw new RangeError(`unknown signal ${JSON.stringify(sig)}`);
  return n;
}

/** "SIGTERM" for 15; undefined for a number that names no signal. */
export function signalName(n: number): string | undefined {
  for (const [name, value] of Object.entries(byName)) if (value === n) return name;
  return undefined;
}
