// The `start` verb: containerd runs it in the bundle directory and reads back, from stdout and
// stderr combined, the ttrpc address of a long-lived shim server. So this verb binds the socket
// itself, hands the listening descriptor to a detached server process (fd 3, in a new session,
// stdio closed), records `address` and `shim.pid` in the bundle, prints only the address, and
// exits. Because the socket already listens when the address is printed, containerd's first
// connection waits in the backlog while the server loads: no readiness polling is needed.
import { readFile, writeFile } from "node:fs/promises";
import type { Server } from "node:net";
import { join } from "node:path";
import { BundleFile, writeAddress, writePidFile } from "@tsrunc/shim-contract/bundle-files";
import { identifierProblem } from "@tsrunc/shim-contract/identifiers";
import type { ShimFlags } from "@tsrunc/shim-contract/shim-flags";
import { socketAddress, socketPath } from "@tsrunc/shim-contract/socket-path";
import { Code, isCode } from "@tsrunc/ttrpc/status";
import { listenUnix } from "@tsrunc/ttrpc/unix";
import { execa } from "execa";
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
  const group = await groupId(bundle, flags.id);
  const path = socketPath(flags.address, flags.namespace, group);
  const address = socketAddress(path);

  let server: Server;
  try {
    // 0600 from the first instant, in a 0700 directory; a stale socket (nothing answers) is
    // replaced, a live one refused.
    server = await listenUnix(path, { backlog: 128 });
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
  const child = execa(self.file, args, {
    cwd: bundle,
    detached: true,
    cleanup: false,
    // execa's types stop at named stdio values; a plain fd number is what Node's spawn takes.
    stdio: ["ignore", "ignore", "ignore", fd as unknown as "ignore"],
    // One malloc arena: an idle shim's threads (libuv's pool, V8's workers) would otherwise each
    // keep an arena of freed pages; measured about 0.5 MB per shim.
    env: { ...process.env, TSRUNC_SHIM_GROUP: group, MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? "1" },
    extendEnv: false,
    reject: false,
  });
  child.unref();
  child.catch(() => {});
  const pid = child.pid;
  if (!pid) throw new StartError("cannot launch the shim server");

  await writeAddress(bundle, address);
  await writePidFile(bundle, BundleFile.shimPid, pid);
  return address;
}

/** The shim a container belongs to: its pod's sandbox when it has one, else itself. */
async function groupId(bundle: string, id: string): Promise<string> {
  try {
    const spec = JSON.parse(await readFile(join(bundle, BundleFile.config), "utf8")) as {
      annotations?: Record<string, string>;
    };
    const sandbox = spec.annotations?.["io.kubernetes.cri.sandbox-id"];
    if (sandbox && !identifierProblem(sandbox)) return sandbox;
  } catch {
    // No readable spec: the container is its own group.
  }
  return id;
}
