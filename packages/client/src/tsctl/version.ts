// tsctl version: the client's version, then the daemon's through containerd's Version service
// (or, while tsruncd has none, whether it answers at all). A daemon that cannot be reached is
// the usual one-line error after the client's lines.

import { readFileSync } from "node:fs";
import { Code, isCode } from "@tsrunc/ttrpc";
import { parseArgs } from "./args.js";
import { withClient } from "./connect.js";
import { GLOBAL_OPTIONS, type Globals, withGlobals } from "./globals.js";

/** @tsrunc/client's package version (dist/tsctl/ → ../../package.json). */
export function clientVersion(): string {
  // In a bundle (no package.json beside it) the bundle step recorded the version.
  const bundled = (globalThis as { __tsruncPackageVersion?: string }).__tsruncPackageVersion;
  if (bundled) return bundled;
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
      version?: string;
    };
    return pkg.version ?? "unknown";
  } catch {
    return "unknown";
  }
}

export async function main(argv: string[], base: Globals): Promise<number> {
  const p = parseArgs(argv, GLOBAL_OPTIONS);
  const g = withGlobals(base, p);
  process.stdout.write(`Client:\n  Version:  ${clientVersion()}\n  Node:     ${process.version}\n\n`);
  return withClient(g, async (client) => {
    process.stdout.write(`Server:\n  Address:  ${g.address}\n`);
    try {
      const v = await client.version({ timeoutMs: 10_000 });
      process.stdout.write(`  Version:  ${v.version || "unknown"}\n  Revision: ${v.revision || "unknown"}\n`);
    } catch (err) {
      if (!isCode(err, Code.Unimplemented)) throw err;
      process.stdout.write("  Version:  unknown (tsruncd answers, but has no Version service yet)\n");
    }
    return 0;
  });
}
