// tsctl events [FILTER...]: one JSON object a line per event, until interrupted (or the daemon
// goes away, which is an error).

import { envelopeJson } from "../events.js";
import { parseArgs } from "./args.js";
import { withClient } from "./connect.js";
import { GLOBAL_OPTIONS, type Globals, withGlobals } from "./globals.js";

export async function main(argv: string[], base: Globals): Promise<number> {
  const p = parseArgs(argv, GLOBAL_OPTIONS);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    return await withClient(withGlobals(base, p), async (client) => {
      for await (const env of client.events.subscribe({ filters: p.positionals, signal: stop.signal })) {
        process.stdout.write(`${JSON.stringify(envelopeJson(env))}\n`);
      }
      return 0;
    });
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
  }
}
