// tsruncd: a foreground daemon with pino JSON logs on stderr. SIGTERM/SIGINT stop it gracefully
// and leave every container running; so does SIGKILL (the next start reconnects).
import pino from "pino";
import { parseConfig, UsageError, usage } from "./config.js";
import { startDaemon } from "./daemon.js";
import { RootLockedError } from "./lock.js";
import { daemonVersion } from "./version.js";

async function main(argv: string[]): Promise<number> {
  let config: ReturnType<typeof parseConfig>;
  try {
    config = parseConfig(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`tsruncd: ${err.message}\n${usage}\n`);
      return 2;
    }
    throw err;
  }
  if (config === "help") {
    process.stdout.write(`${usage}\n`);
    return 0;
  }
  if (config === "version") {
    process.stdout.write(`tsruncd ${daemonVersion} (node ${process.version})\n`);
    return 0;
  }
  const log = pino(
    { level: config.logLevel, base: { pid: process.pid } },
    pino.destination({ fd: 2, sync: true }),
  );
  let daemon: Awaited<ReturnType<typeof startDaemon>>;
  try {
    daemon = await startDaemon(config, log);
  } catch (err) {
    if (err instanceof RootLockedError || err instanceof UsageError) {
      process.stderr.write(`tsruncd: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
  const stop = (signal: string) => {
    log.info({ signal }, "stopping");
    void daemon.stop().then(() => process.exit(0));
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  // A client that goes away mid-write must not kill the daemon.
  process.on("SIGPIPE", () => {});
  return -1;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code);
  },
  (err: Error) => {
    process.stderr.write(`tsruncd: ${process.env.TSRUNC_DEBUG ? (err.stack ?? err.message) : err.message}\n`);
    process.exit(1);
  },
);
