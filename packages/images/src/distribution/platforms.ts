// Platforms: parse "os/arch[/variant]", normalize the aliases people and images use (x86_64,
// aarch64, armhf, …), know the host's, and pick the best manifest of an index for a platform the
// way containerd's default matcher does: the exact os/arch/variant first, then variants the
// platform can also run (arm v7 runs v6 and v5; amd64 v3 runs v2 and v1), in the index's order.

import { arch as hostArch } from "node:process";
import { Code, TtrpcError } from "@tsrunc/ttrpc/status";
import type { Descriptor, Platform } from "../content-store.js";

const archAliases: Record<string, { architecture: string; variant?: string }> = {
  x86_64: { architecture: "amd64" },
  "x86-64": { architecture: "amd64" },
  x64: { architecture: "amd64" },
  aarch64: { architecture: "arm64" },
  armhf: { architecture: "arm", variant: "v7" },
  armel: { architecture: "arm", variant: "v6" },
  i386: { architecture: "386" },
  i686: { architecture: "386" },
  ia32: { architecture: "386" },
  ppc64: { architecture: "ppc64le" },
};

const platformPart = /^[a-z0-9_.-]+$/;

/** Normalizes aliases and default variants: arm64/v8 → arm64, amd64/v1 → amd64, arm → arm/v7. */
export function normalizePlatform(p: Platform): Platform {
  const os = p.os.toLowerCase() === "macos" ? "darwin" : p.os.toLowerCase();
  let architecture = p.architecture.toLowerCase();
  let variant = p.variant?.toLowerCase();
  const alias = archAliases[architecture];
  if (alias !== undefined) {
    architecture = alias.architecture;
    if (variant === undefined && alias.variant !== undefined) variant = alias.variant;
  }
  if (architecture === "arm64" && (variant === "8" || variant === "v8")) variant = undefined;
  if (architecture === "amd64" && (variant === "v1" || variant === "1")) variant = undefined;
  if (architecture === "arm") {
    if (variant === undefined || variant === "") variant = "v7";
    else if (/^[5-8]$/.test(variant)) variant = `v${variant}`;
  }
  if (variant === "") variant = undefined;
  return { os, architecture, ...(variant === undefined ? {} : { variant }) };
}

/** "linux/amd64", "linux/arm/v7". */
export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
}

/** The platform this process runs on (linux/amd64 on an x86-64 Linux). */
export function hostPlatform(): Platform {
  const os = process.platform === "win32" ? "windows" : process.platform;
  let architecture: string = hostArch;
  let variant: string | undefined;
  switch (hostArch) {
    case "x64":
      architecture = "amd64";
      break;
    case "ia32":
      architecture = "386";
      break;
    case "arm": {
      architecture = "arm";
      const v = (process.config.variables as { arm_version?: string | number }).arm_version;
      variant = v === undefined ? "v7" : `v${v}`;
      break;
    }
    case "ppc64":
      architecture = "ppc64le";
      break;
  }
  return normalizePlatform({ os, architecture, ...(variant === undefined ? {} : { variant }) });
}

/**
 * Parses "os/arch[/variant]" (also "arch" alone, meaning linux, or "os" alone, meaning the host's
 * architecture). InvalidArgument for anything else.
 */
export function parsePlatform(spec: string): Platform {
  const parts = spec.trim().toLowerCase().split("/");
  const bad = () =>
    new TtrpcError(
      Code.InvalidArgument,
      `invalid platform ${JSON.stringify(spec)}: want os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8`,
    );
  if (parts.length === 0 || parts.length > 3 || parts.some((p) => !platformPart.test(p))) throw bad();
  if (parts.length === 1) {
    const only = parts[0]!;
    const knownOs = ["linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos"];
    if (knownOs.includes(only)) return normalizePlatform({ ...hostPlatform(), os: only });
    return normalizePlatform({ os: "linux", architecture: only });
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return normalizePlatform({ os, architecture, ...(variant === undefined ? {} : { variant }) });
}

/** The platforms `want` can run, best first (itself, then older variants of its architecture). */
export function compatiblePlatforms(want: Platform): Platform[] {
  const p = normalizePlatform(want);
  const out: Platform[] = [p];
  const version = p.variant === undefined ? undefined : Number(p.variant.replace(/^v/, ""));
  if (p.architecture === "arm" && version !== undefined && Number.isInteger(version)) {
    for (let v = version - 1; v >= 5; v--) out.push({ os: p.os, architecture: "arm", variant: `v${v}` });
  }
  if (p.architecture === "amd64" && version !== undefined && Number.isInteger(version)) {
    for (let v = version - 1; v >= 2; v--) out.push({ os: p.os, architecture: "amd64", variant: `v${v}` });
    out.push({ os: p.os, architecture: "amd64" });
  }
  if (p.architecture === "arm64" && version !== undefined && version > 8) {
    // arm64/v8.x: any older 8.x and plain arm64
    out.push({ os: p.os, architecture: "arm64" });
  }
  return out;
}

function samePlatform(a: Platform, b: Platform): boolean {
  return a.os === b.os && a.architecture === b.architecture && (a.variant ?? "") === (b.variant ?? "");
}

/** How well a descriptor's platform suits `want`: 0 best, higher worse, -1 not at all. */
export function platformRank(want: Platform, have: Platform | undefined): number {
  if (have === undefined || typeof have.os !== "string" || typeof have.architecture !== "string") return -1;
  const h = normalizePlatform(have);
  return compatiblePlatforms(want).findIndex((c) => samePlatform(c, h));
}

/** The best manifest of an index for `want`, or undefined if none suits it. */
export function pickManifest(manifests: readonly Descriptor[], want: Platform): Descriptor | undefined {
  let best: Descriptor | undefined;
  let bestRank = Number.POSITIVE_INFINITY;
  for (const m of manifests) {
    const rank = platformRank(want, m.platform);
    if (rank >= 0 && rank < bestRank) {
      best = m;
      bestRank = rank;
    }
  }
  return best;
}
