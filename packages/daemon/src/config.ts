// tsruncd's command line. Mistakes are one line on stderr (exit 2), never a stack trace.
import { isAbsolute, resolve } from "node:path";
import { parseArgs } from "node:util";
import { defaultDaemonAddress, defaultDaemonRoot, defaultDaemonState } from "@tsrunc/shim-contract/roots";

export interface DaemonConfig {
  root: string;
  state: string;
  address: string;
  /** containerd's gRPC API socket; undefined: not served (`--grpc-address none`). */
  grpcAddress: string | undefined;
  logLevel: string;
  /** A group (name or gid) whose members may use the socket besides root. */
  group: string | undefined;
  debugShims: boolean;
  /** Caps every deadline of a shim's creation (start, connect, Task.Create, rollback); tests use it. */
  shimTimeoutMs: number | undefined;
  /** CNI network configurations (.conflist, .conf). */
  cniConfDir: string;
  /** CNI plugin directories, searched in order. */
  cniBinDirs: string[];
}

export const defaultCniConfDir = "/etc/tsrunc/cni/net.d";
/** Debian's containernetworking-plugins first, then the upstream tarball's place. */
export const defaultCniBinDirs = ["/usr/lib/cni", "/opt/cni/bin"];

/** Where containerd's gRPC API is served by default (beside the ttrpc socket). */
export const defaultGrpcAddress = "/run/tsrunc/tsruncd-grpc.sock";

export class UsageError extends Error {}

const levels = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

export const usage = `usage: tsruncd [--root DIR] [--state DIR] [--address PATH] [--grpc-address PATH|none] [--log-level LEVEL] [--group GROUP]
  --root       durable state: database (default ${defaultDaemonRoot})
  --state      volatile state: bundles, sockets (default ${defaultDaemonState})
  --address    the API socket (default <state>/tsruncd.sock, ${defaultDaemonAddress} by default)
  --grpc-address  containerd's gRPC API socket, or none (default <state>/tsruncd-grpc.sock,
               ${defaultGrpcAddress} by default)
  --log-level  ${levels.join("|")} (default info)
  --group      a group whose members may use the socket besides root
  --shim-timeout-ms  cap on each deadline of a shim's creation (default: 10 s start/connect, 60 s Create)
  --cni-conf-dir  CNI network configurations (default ${defaultCniConfDir})
  --cni-bin-dir   CNI plugin directories, colon-separated (default ${defaultCniBinDirs.join(":")})`;

export function parseConfig(argv: string[]): DaemonConfig | "help" | "version" {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help) return "help";
  if (v.version) return "version";
  if (parsed.positionals.length)
    throw new UsageError(`unexpected argument ${JSON.stringify(parsed.positionals[0])}`);
  const logLevel = v["log-level"] ?? "info";
  if (!levels.includes(logLevel)) throw new UsageError(`invalid --log-level ${JSON.stringify(logLevel)}`);
  const abs = (name: string, p: string) => {
    if (!isAbsolute(p)) throw new UsageError(`--${name} must be an absolute path: ${p}`);
    return resolve(p);
  };
  const root = abs("root", v.root ?? defaultDaemonRoot);
  const state = abs("state", v.state ?? defaultDaemonState);
  const address = abs("address", v.address ?? (v.state ? `${state}/tsruncd.sock` : defaultDaemonAddress));
  const grpcArg = v["grpc-address"];
  const grpcAddress =
    grpcArg === "none"
      ? undefined
      : abs("grpc-address", grpcArg ?? (v.state ? `${state}/tsruncd-grpc.sock` : defaultGrpcAddress));
  if (grpcAddress !== undefined && grpcAddress === address)
    throw new UsageError("--grpc-address must differ from --address");
  const cap = v["shim-timeout-ms"];
  if (cap !== undefined && !/^[1-9][0-9]{0,8}$/.test(cap))
    throw new UsageError(`invalid --shim-timeout-ms ${JSON.stringify(cap)}`);
  return {
    root,
    state,
    address,
    grpcAddress,
    logLevel,
    group: v.group,
    debugShims: v["debug-shims"] ?? false,
    shimTimeoutMs: cap === undefined ? undefined : Number(cap),
    cniConfDir: abs("cni-conf-dir", v["cni-conf-dir"] ?? defaultCniConfDir),
    cniBinDirs:
      v["cni-bin-dir"] === undefined
        ? defaultCniBinDirs
        : v["cni-bin-dir"].split(":").map((d) => abs("cni-bin-dir", d)),
  };
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      root: { type: "string" },
      state: { type: "string" },
      address: { type: "string" },
      "grpc-address": { type: "string" },
      "log-level": { type: "string" },
      group: { type: "string" },
      "debug-shims": { type: "boolean" },
      "shim-timeout-ms": { type: "string" },
      "cni-conf-dir": { type: "string" },
      "cni-bin-dir": { type: "string" },
      help: { type: "boolean", short: "h" },
      version: { type: "boolean", short: "v" },
    },
  });
}
