// Parses the shim's command line the way Go's `flag` package does, because containerd builds it
// with Go conventions: `-flag value`, `--flag value`, `-flag=value`, and bare booleans such as
// `-debug` or `-v`. Parsing stops at the first non-flag word, which is the verb.

export interface ShimFlags {
  namespace: string;
  address: string;
  publishBinary: string;
  id: string;
  bundle: string;
  socket: string;
  debug: boolean;
  version: boolean;
  info: boolean;
  /** `start`, `delete`, `serve` (ours: what `start` launches), or "" when none was given. */
  verb: string;
  rest: string[];
}

const stringFlags: Record<string, keyof ShimFlags> = {
  namespace: "namespace",
  address: "address",
  "publish-binary": "publishBinary",
  id: "id",
  bundle: "bundle",
  socket: "socket",
};
const boolFlags: Record<string, keyof ShimFlags> = { debug: "debug", v: "version", info: "info" };

export class FlagError extends Error {}

export function parseFlags(argv: readonly string[]): ShimFlags {
  const out: ShimFlags = {
    namespace: "",
    address: "",
    publishBinary: "",
    id: "",
    bundle: "",
    socket: "",
    debug: false,
    version: false,
    info: false,
    verb: "",
    rest: [],
  };
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      i++;
      break;
    }
    if (!arg.startsWith("-") || arg === "-") break;
    const body = arg.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const name = eq >= 0 ? body.slice(0, eq) : body;
    const inline = eq >= 0 ? body.slice(eq + 1) : undefined;
    const boolKey = boolFlags[name];
    if (boolKey) {
      (out as unknown as Record<string, unknown>)[boolKey] =
        inline === undefined ? true : parseBool(name, inline);
      continue;
    }
    const strKey = stringFlags[name];
    if (!strKey) throw new FlagError(`flag provided but not defined: -${name}`);
    let value = inline;
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new FlagError(`flag needs an argument: -${name}`);
      value = argv[++i]!;
    }
    (out as unknown as Record<string, unknown>)[strKey] = value;
  }
  out.verb = argv[i] ?? "";
  out.rest = argv.slice(i + 1);
  return out;
}

function parseBool(name: string, v: string): boolean {
  if (["1", "t", "T", "true", "TRUE", "True"].includes(v)) return true;
  if (["0", "f", "F", "false", "FALSE", "False"].includes(v)) return false;
  throw new FlagError(`invalid boolean value "${v}" for -${name}`);
}
