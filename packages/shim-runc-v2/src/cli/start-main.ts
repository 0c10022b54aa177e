// The `start` verb on its own: the bundle step (scripts/lib/bundle-shim.mjs) bundles this entry
// separately (about 20 KB: flags, ids, the socket and the spawn; no protocol, pino, runc driver
// or Task service) and embeds it in the launcher, which runs it when the last argument is
// `start`. So `start` — once per container, on the critical path of every run — compiles a
// small script instead of deserializing the whole shim's code cache.
import { FlagError, parseFlags } from "@tsrunc/shim-contract/shim-flags";
import { startShim } from "./start.js";

async function readStdin(): Promise<Uint8Array> {
  if (process.stdin.isTTY) return new Uint8Array();
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/**
 * Runs `start` when argv asks for it and returns true; false (nothing done) for anything else,
 * which the launcher then hands to the whole bundle.
 */
export function startMain(argv: string[]): boolean {
  let flags: ReturnType<typeof parseFlags>;
  try {
    flags = parseFlags(argv);
  } catch (err) {
    if (err instanceof FlagError) return false; // the bundle reports it as usual
    throw err;
  }
  if (flags.verb !== "start" || flags.version || flags.info) return false;
  readStdin()
    .then((options) => startShim(flags, options))
    .then(
      (address) => {
        process.stdout.write(address, () => process.exit(0));
      },
      (err: Error) => {
        // The stack only on request: containerd shows start's output verbatim as the error.
        const detail = process.env.TSRUNC_DEBUG ? (err.stack ?? err.message) : err.message;
        process.stderr.write(`containerd-shim-tsrunc-v2: ${detail}\n`, () => process.exit(1));
      },
    );
  return true;
}
