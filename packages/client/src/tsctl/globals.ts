// Options every tsctl command accepts (before the command or among its own options), with
// their environment variables: --address (TSRUNC_ADDRESS), -n/--namespace (TSRUNC_NAMESPACE),
// --fifo-dir (TSRUNC_FIFO_DIR).

import { DEFAULT_ADDRESS, DEFAULT_FIFO_ROOT, DEFAULT_NAMESPACE } from "../defaults.js";
import { type OptionSpec, type Parsed, str } from "./args.js";

export interface Globals {
  address: string;
  namespace: string;
  fifoDir: string;
}

export const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  { name: "address", short: "a", type: "string" },
  { name: "namespace", short: "n", type: "string" },
  { name: "fifo-dir", type: "string" },
  { name: "help", short: "h", type: "boolean" },
];

export function globalsFromEnv(env: NodeJS.ProcessEnv = process.env): Globals {
  return {
    address: env.TSRUNC_ADDRESS || DEFAULT_ADDRESS,
    namespace: env.TSRUNC_NAMESPACE || DEFAULT_NAMESPACE,
    fifoDir: env.TSRUNC_FIFO_DIR || DEFAULT_FIFO_ROOT,
  };
}

/** The globals with whatever a parse found on top. */
export function withGlobals(g: Globals, p: Parsed): Globals {
  return {
    address: str(p, "address") ?? g.address,
    namespace: str(p, "namespace") ?? g.namespace,
    fifoDir: str(p, "fifo-dir") ?? g.fifoDir,
  };
}
