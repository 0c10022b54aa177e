// Linux capability names by number (include/uapi/linux/capability.h), and the effective set of
// the calling process: a privileged container gets what its creator has, as containerd's
// WithAllCurrentCapabilities does (which may be less than "all" when we run in a container).

import { readFileSync } from "node:fs";

export const KNOWN_CAPABILITIES: readonly string[] = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_IPC_OWNER",
  "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO",
  "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT",
  "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG",
  "CAP_MKNOD",
  "CAP_LEASE",
  "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE",
  "CAP_MAC_ADMIN",
  "CAP_SYSLOG",
  "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND",
  "CAP_AUDIT_READ",
  "CAP_PERFMON",
  "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
];

/** Names of the bits set in a capability mask (bits we have no name for are left out). */
export function capabilitiesFromMask(mask: bigint): string[] {
  const out: string[] = [];
  KNOWN_CAPABILITIES.forEach((name, bit) => {
    if ((mask >> BigInt(bit)) & 1n) out.push(name);
  });
  return out;
}

/** The CapEff line of a /proc/<pid>/status text, as names; undefined when there is none. */
export function effectiveCapabilities(statusText: string): string[] | undefined {
  const m = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(statusText);
  return m === null ? undefined : capabilitiesFromMask(BigInt(`0x${m[1]}`));
}

/** This process's effective capabilities (all known ones if /proc cannot be read). */
export function currentCapabilities(): string[] {
  try {
    return effectiveCapabilities(readFileSync("/proc/self/status", "utf8")) ?? [...KNOWN_CAPABILITIES];
  } catch {
    return [...KNOWN_CAPABILITIES];
  }
}
