// containerd's runtime names map to shim binaries: `io.containerd.runc.v2` is run as
// `containerd-shim-runc-v2`, found on PATH. An absolute path names the binary itself.
import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { Code, TtrpcError } from "@tsrunc/ttrpc";

/** The binary name for a runtime name, or undefined when the name has no such form. */
export function shimBinaryName(runtime: string): string | undefined {
  const parts = runtime.split(".");
  if (parts.length < 2) return undefined;
  const [name, version] = parts.slice(-2) as [string, string];
  if (!/^[A-Za-z0-9_-]+$/.test(name) || !/^[A-Za-z0-9_-]+$/.test(version)) return undefined;
  return `containerd-shim-${name}-${version}`;
}

/** Resolves a runtime name (or an absolute path) to an executable shim binary. */
export async function resolveShimBinary(runtime: string, path = process.env.PATH ?? ""): Promise<string> {
  if (isAbsolute(runtime)) {
    if (await executable(runtime)) return runtime;
    throw new TtrpcError(Code.NotFound, `runtime ${JSON.stringify(runtime)}: not an executable file`);
  }
  const name = shimBinaryName(runtime);
  if (!name) throw new TtrpcError(Code.InvalidArgument, `invalid runtime name ${JSON.stringify(runtime)}`);
  for (const dir of path.split(":")) {
    if (!dir || !isAbsolute(dir)) continue;
    const candidate = join(dir, name);
    if (await executable(candidate)) return candidate;
  }
  throw new TtrpcError(
    Code.NotFound,
    `runtime ${JSON.stringify(runtime)} binary not installed ${JSON.stringify(name)}`,
  );
}

async function executable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
