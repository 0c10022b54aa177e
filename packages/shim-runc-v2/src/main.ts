// containerd-shim-tsrunc-v2: dispatches the verbs of the runtime-v2 shim binary contract.
// `start` and `delete` print only what containerd parses (the address; DeleteResponse bytes);
// errors go to stderr with a non-zero exit, which containerd shows as the failure.
import { FlagError, parseFlags, type ShimFlags } from "./cli/flags.js";
import { shimVersion } from "./version.js";

async function readStdin(): Promise<Uint8Array> {
  if (process.stdin.isTTY) return new Uint8Array();
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function main(argv: string[]): Promise<number> {
  let flags: ShimFlags;
  try {
    flags = parseFlags(argv);
  } catch (err) {
    if (err instanceof FlagError) {
      process.stderr.write(`${err.message}\n`);
      return 2;
    }
    throw err;
  }
  if (flags.version) {
    process.stdout.write(
      `containerd-shim-tsrunc-v2:\n  Version:  ${shimVersion}\n  Runtime:  node ${process.version}\n`,
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

main(process.argv.slice(2)).then(
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
