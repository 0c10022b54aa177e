// How the shim re-executes itself. As a Node single-executable application the binary is
// process.execPath; as a bundled script run by node it is node plus the script path.
import { realpathSync } from "node:fs";

export function selfCommand(): { file: string; args: string[] } {
  // Whatever the file is called (an installer may rename it), a script has its path in argv[1].
  const script = process.argv[1];
  if (script && script !== process.execPath && !isSea())
    return { file: process.execPath, args: [realpathSync(script)] };
  return { file: process.execPath, args: [] };
}

function isSea(): boolean {
  try {
    // node:sea exists from Node 20.12; isSea() tells whether we run as a single executable.
    // biome-ignore lint/suspicious/noExplicitAny: the module is absent from older typings
    const sea = (process as any).getBuiltinModule?.("node:sea") as { isSea(): boolean } | undefined;
    return sea?.isSea() ?? false;
  } catch {
    return false;
  }
}
