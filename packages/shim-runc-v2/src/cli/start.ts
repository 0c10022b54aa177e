// The `start` verb: containerd runs it in the bundle directory and reads back, from stdout and
// stderr combined, the ttrpc address of a long-lived shim server. So this verb binds the socket
// itself, hands the listening descriptor to a detached server process (fd 3, in a new session,
// stdio closed), records `address` and `shim.pid` in the bundle, prints only the address, and
// exits. Because the socket already listens when the address is printed, containerd's first
// connection waits in the backlog while the server loads: no readiness polling is needed.
import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, statSync, unlinkSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import type { Server } from "node:net";
import { basename, dirname, join } from "node:path";
import { BundleFile, writeAddress, writePidFile } from "@tsrunc/shim-contract/bundle-files";
import { identifierProblem } from "@tsrunc/shim-contract/identifiers";
import { withoutNodeVariables } from "@tsrunc/shim-contract/invocation";
import type { ShimFlags } from "@tsrunc/shim-contract/shim-flags";
import { socketAddress, socketPath } from "@tsrunc/shim-contract/socket-path";
import { Code, isCode } from "@tsrunc/ttrpc/status";
import { listenUnix } from "@tsrunc/ttrpc/unix";
import { selfCommand } from "./self-exec.js";

export class StartError extends Error {}

export async function startShim(
  flags: ShimFlags,
  stdinOptions: Uint8Array,
  bundle = process.cwd(),
): Promise<string> {
  for (const [name, v] of [
    ["id", flags.id],
    ["namespace", flags.namespace],
  ] as const) {
    const problem = identifierProblem(v);
    if (problem) throw new StartError(`invalid -${name}: ${problem}`);
  }
  const group = await groupId(bundle, flags.id, groupedInvocation());
  const path = socketPath(flags.address, flags.namespace, group);
  const address = socketAddress(path);

  let server: Server;
  try {
    // 0600 from the first instant, in a 0700 directory; a stale socket (nothing answers) is
    // replaced, a live one refused.
    // A shared group's first containers may start at once: one binds, the others must find it
    // listening, not take its half-bound socket for a stale one and replace it.
    server =
      group === flags.id
        ? await listenUnix(path, { backlog: 128 })
        : await withGroupLock(path, () => listenUnix(path, { backlog: 128 }));
  } catch (err) {
    if (!isCode(err, Code.AlreadyExists)) throw err;
    // A live shim already serves this group (a pod's sandbox): containerd should use it.
    if (group !== flags.id) {
      await writeAddress(bundle, address);
      return address;
    }
    throw new StartError(`a shim already serves ${flags.namespace}/${flags.id} at ${address}`);
  }

  if (stdinOptions.length > 0)
    await writeFile(join(bundle, BundleFile.shimOptions), stdinOptions, { mode: 0o600 });
  const self = selfCommand();
  const args = [
    ...self.args,
    "-namespace",
    flags.namespace,
    "-id",
    flags.id,
    "-address",
    flags.address,
    "-publish-binary",
    flags.publishBinary,
    ...(flags.debug ? ["-debug"] : []),
    "serve",
  ];
  // biome-ignore lint/suspicious/noExplicitAny: the listening handle's fd is not in Node's typings
  const fd = (server as any)._handle.fd as number;
  // node:child_process, not execa: start runs once per container, and loading execa cost
  // more than the spawn itself (see the README's benchmarks).
  const child = spawn(self.file, args, {
    cwd: bundle,
    detached: true,
    stdio: ["ignore", "ignore", "ignore", fd],
    env: serverEnvironment(process.env, group),
  });
  child.unref();
  child.on("error", () => {});
  const pid = child.pid;
  if (!pid) throw new StartError("cannot launch the shim server");

  await writeAddress(bundle, address);
  await writePidFile(bundle, BundleFile.shimPid, pid);
  return address;
}

/**
 * The server's environment: containerd's, without Node's own knobs. NODE_OPTIONS,
 * NODE_EXTRA_CA_CERTS (about 50 ms of start-up here: Node reads every certificate before the
 * first line runs) and the other NODE_* variables a containerd may have been started with would
 * slow or change the long-lived server; a profiler asks to keep them with TSRUNC_KEEP_NODE_ENV=1.
 * One malloc arena: an idle shim's threads (libuv's pool, V8's workers) would otherwise each keep
 * an arena of freed pages; measured about 0.5 MB per shim.
 */
export function serverEnvironment(env: NodeJS.ProcessEnv, group: string): Record<string, string> {
  const out = withoutNodeVariables(env, env.TSRUNC_KEEP_NODE_ENV === "1");
  out.TSRUNC_SHIM_GROUP = group;
  out.MALLOC_ARENA_MAX = env.MALLOC_ARENA_MAX ?? "1";
  return out;
}

/**
 * Runs `fn` holding `<socket>.lock` (O_EXCL; a lock older than 5 s is a dead holder's and is
 * broken). Only around the bind: once bound, the socket listens and a probe finds it alive.
 */
export async function withGroupLock<T>(socket: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${socket}.lock`;
  mkdirSync(dirname(socket), { recursive: true, mode: 0o700 });
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      closeSync(openSync(lock, "wx", 0o600));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      try {
        if (Date.now() - statSync(lock).mtimeMs > 5000) unlinkSync(lock);
      } catch {
        // released meanwhile
      }
      if (Date.now() > deadline) throw new StartError(`timed out waiting for ${lock}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  }
  try {
    return await fn();
  } finally {
    try {
      unlinkSync(lock);
    } catch {
      // broken by someone who took us for dead
    }
  }
}

/** The spec annotation that names a container's group in grouped mode. */
export const GROUP_ANNOTATION = "io.tsrunc.shim-group";

/**
 * Grouped mode: one server for every container of a namespace (or of the group its spec's
 * io.tsrunc.shim-group annotation names). Chosen by the name the binary is run under — containerd
 * resolves the runtime `io.containerd.tsrunc-grouped.v2` to `containerd-shim-tsrunc-grouped-v2`, a
 * link to this binary — or by TSRUNC_GROUPED=1 in the environment.
 */
export function groupedInvocation(argv1 = process.argv[1] ?? "", env = process.env): boolean {
  return env.TSRUNC_GROUPED === "1" || basename(argv1).includes("tsrunc-grouped");
}

/**
 * The shim a container belongs to: in grouped mode its named group or its namespace's (ids with a
 * `group:` prefix, which no container id can collide with: ':' is not in the identifier rule);
 * else its pod's sandbox when it has one; else itself.
 */
export async function groupId(bundle: string, id: string, grouped = false): Promise<string> {
  let annotations: Record<string, string> = {};
  try {
    const spec = JSON.parse(await readFile(join(bundle, BundleFile.config), "utf8")) as {
      annotations?: Record<string, string>;
    };
    annotations = spec.annotations ?? {};
  } catch {
    // No readable spec: no annotations.
  }
  if (grouped) {
    const name = annotations[GROUP_ANNOTATION];
    return `group:${name && !identifierProblem(name) ? name : "default"}`;
  }
  const sandbox = annotations["io.kubernetes.cri.sandbox-id"];
  if (sandbox && !identifierProblem(sandbox)) return sandbox;
  return id;
}
