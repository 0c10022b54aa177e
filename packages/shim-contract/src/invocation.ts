// How a caller runs a shim binary, as containerd 1.6–2.x does: Go flag syntax, the verb last,
// the bundle as cwd, and the addresses in the environment. The shim's side of the same contract
// is parseFlags (shim-flags.ts).

export interface ShimInvocation {
  namespace: string;
  id: string;
  /** The caller's own address; a shim hashes it into its socket path (see socket-path.ts). */
  address: string;
  /** The bundle directory (cwd of every verb; `delete` also gets it as -bundle). */
  bundle: string;
  /** Where the shim sends its events (Events/Forward on ttrpc): env TTRPC_ADDRESS. */
  ttrpcAddress: string;
  /** containerd's gRPC address, env GRPC_ADDRESS; a shim may use it to publish with the CLI. */
  grpcAddress?: string;
  /** The binary a shim may run to publish events (containerd passes itself). */
  publishBinary?: string;
  debug?: boolean;
}

function commonFlags(inv: ShimInvocation): string[] {
  return [
    "-namespace",
    inv.namespace,
    "-address",
    inv.address,
    "-publish-binary",
    inv.publishBinary ?? "",
    "-id",
    inv.id,
    ...(inv.debug ? ["-debug"] : []),
  ];
}

export function startArgs(inv: ShimInvocation): string[] {
  return [...commonFlags(inv), "start"];
}

export function deleteArgs(inv: ShimInvocation): string[] {
  return [...commonFlags(inv), "-bundle", inv.bundle, "delete"];
}

/**
 * The environment a shim runs with: the caller's, less what would slow down or alter a Node
 * shim (NODE_OPTIONS could load a test runner's hooks into it; NODE_EXTRA_CA_CERTS alone costs
 * ~50 ms per Node start-up here and a shim makes no TLS connections), plus the addresses.
 */
export function shimEnvironment(
  inv: ShimInvocation,
  base: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const env = withoutNodeVariables(base);
  env.TTRPC_ADDRESS = inv.ttrpcAddress;
  if (inv.grpcAddress) env.GRPC_ADDRESS = inv.grpcAddress;
  env.NAMESPACE = inv.namespace;
  return env;
}

/**
 * `env` without Node's own knobs (NODE_OPTIONS, NODE_EXTRA_CA_CERTS and every other NODE_*): what
 * a Node shim process is started with, by its caller (shimEnvironment) and by the shim's own
 * `start` for its server. `keep` leaves them in (a profiler's TSRUNC_KEEP_NODE_ENV=1).
 */
export function withoutNodeVariables(env: NodeJS.ProcessEnv, keep = false): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined || (!keep && k.startsWith("NODE_"))) continue;
    out[k] = v;
  }
  return out;
}
