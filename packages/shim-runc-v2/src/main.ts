// containerd-shim-tsrunc-v2: dispatches the verbs of the runtime-v2 shim binary contract.
// `start` and `delete` print only what containerd parses (the address; DeleteResponse bytes);
// errors go to stderr with a non-zero exit, which containerd shows as the failure.
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { BundleFile } from "@tsrunc/shim-contract/bundle-files";
import { identifierProblem } from "@tsrunc/shim-contract/identifiers";
import { FlagError, parseFlags, type ShimFlags } from "@tsrunc/shim-contract/shim-flags";
import { removeShimSocket } from "@tsrunc/shim-contract/socket-path";
import { shimVersion } from "./version.js";

async function readStdin(): Promise<Uint8Array> {
  if (process.stdin.isTTY) return new Uint8Array();
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The DeleteResponse a clean Delete left (the server already cleaned up), if any. */
async function cleanDeleteResponse(flags: ShimFlags): Promise<Uint8Array | undefined> {
  if (identifierProblem(flags.id) || identifierProblem(flags.namespace)) return undefined;
  const bundle = resolve(flags.bundle || process.cwd());
  const bytes = await readFile(join(bundle, BundleFile.deleted)).catch(() => undefined);
  if (!bytes) return undefined;
  // A server that died between Delete and Shutdown leaves its socket: remove it as delete does.
  await removeShimSocket(flags.address, flags.namespace, flags.id);
  return bytes;
}

/** ", single executable" inside a Node SEA (scripts/lib/sea-entry.cjs sets the global). */
function standalone(): string {
  return (globalThis as { __tsruncSea?: boolean }).__tsruncSea ? ", single executable" : "";
}

async function main(argv: string[]): Promise<number> {
  if (process.env.TSRUNC_WARM_ALL) {
    // Install time: evaluate every verb's modules so the code cache covers them; run nothing.
    await Promise.all([
      import("./cli/start.js"),
      import("./cli/serve.js"),
      import("./cli/delete.js"),
      import("./cli/info.js"),
    ]);
    return -1;
  }
  let flags: ShimFlags;
  try {
    // Go's flag package knows only -v; --version as every other command of ours answers it.
    flags = parseFlags(argv.length === 1 && /^--?version$/.test(argv[0] ?? "") ? ["-v"] : argv);
  } catch (err) {
    if (err instanceof FlagError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (flags.version) {
    process.stdout.write(
      `containerd-shim-tsrunc-v2:\n  Version:  ${shimVersion}\n  Runtime:  node ${process.version}${standalone()}\n`,
    );
    return 0;
  }
  switch (flags.verb) {
    case "start": {
      const { startShim } = await import("./cli/start.js");
      const address = await startShim(flags, await readStdin());
      process.stdout.write(address);
      return 0;
    }
    case "delete": {
      const fast = await cleanDeleteResponse(flags);
      if (fast) {
        await new Promise<void>((r) => process.stdout.write(fast, () => r()));
        return 0;
      }
      const { deleteShim } = await import("./cli/delete.js");
      const bytes = await deleteShim(flags);
      await new Promise<void>((r) => process.stdout.write(bytes, () => r()));
      return 0;
    }
    case "serve": {
      const { serve } = await import("./cli/serve.js");
      await serve(flags);
      return -1; // keep running
    }
    default:
      if (flags.info) {
        const { runtimeInfo } = await import("./cli/info.js");
        const bytes = await runtimeInfo(await readStdin());
        await new Promise<void>((r) => process.stdout.write(bytes, () => r()));
        return 0;
      }
      process.stderr.write(`unknown verb ${JSON.stringify(flags.verb)}: use start, delete, -v or -info\n`);
      return 2;
  }
}

// The launcher waits for this before it writes the code cache (see launcher.cjs).
(globalThis as { __tsruncMain?: Promise<void> }).__tsruncMain = main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
    if (code >= 0) setImmediate(() => process.exit(code));
  },
  (err: Error) => {
    // The stack only on request: containerd shows start's output verbatim as the error.
    const detail = process.env.TSRUNC_DEBUG ? (err.stack ?? err.message) : err.message;
    process.stderr.write(`containerd-shim-tsrunc-v2: ${detail}\n`);
    process.exit(1);
  },
);
