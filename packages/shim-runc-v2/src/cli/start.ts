// The `start` verb: containerd runs it in the bundle directory and reads back, from stdout and
// stderr combined, the ttrpc address of a long-lived shim server. So this verb binds the socket
// itself, hands the listening descriptor to a detached server process (fd 3, in a new session,
// stdio closed), records `address` and `shim.pid` in the bundle, prints only the address, and
// exits. Because the socket already listens when the address is printed, containerd's first
// connection waits in the backlog while the server loads: no readiness polling is needed.
import { constants } from "node:fs";
import { access, chmod, mkdir, readFile, unlink, writeFile } from "node:fs/promises";
import { createConnection, createServer, type Server } from "node:net";
import { join } from "node:path";
import { execa } from "execa";
import { identifierProblem } from "../identifiers.js";
import { socketAddress, socketDir, socketPath } from "../socket-path.js";
import type { ShimFlags } from "./flags.js";
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
  await mkdir(socketDir(), { recursive: true, mode: 0o700 });

  let server: Server;
  try {
    server = await listen(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
    if (await answers(path)) {
      // A live shim already serves this group (a pod's sandbox): containerd should use it.
      if (group !== flags.id) {
        await writeFile(join(bundle, "address"), address);
        return address;
      }
      throw new StartError(`a shim already serves ${flags.namespace}/${flags.id} at ${address}`);
    }
    await unlink(path);
    server = await listen(path);
  }
  await chmod(path, 0o600);

  if (stdinOptions.length > 0)
    await writeFile(join(bundle, "shim-options.pb"), stdinOptions, { mode: 0o600 });
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

  await writeFile(join(bundle, "address"), address);
  await writeFile(join(bundle, "shim.pid"), String(pid));
  return address;
}

/** The shim a container belongs to: its pod's sandbox when it has one, else itself. */
async function groupId(bundle: string, id: string): Promise<string> {
  try {
    await access(join(bundle, "config.json"), constants.R_OK);
    const spec = JSON.parse(await readFile(join(bundle, "config.json"), "utf8")) as {
      annotations?: Record<string, string>;
    };
    const sandbox = spec.annotations?.["io.kubernetes.cri.sandbox-id"];
    if (sandbox && !identifierProblem(sandbox)) return sandbox;
  } catch {
    // No readable spec: the container is its own group.
  }
  return id;
}

function listen(path: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen({ path, backlog: 128 }, () => {
      s.off("error", reject);
      resolve(s);
    });
  });
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });
}
