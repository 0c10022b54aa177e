// The `delete` verb: containerd runs it when the shim server is gone (it crashed or was
// SIGKILLed) to clean up what the server would have: the runc container (force-deleted, which
// kills what is left of it), the rootfs mount, and the dead server's socket. It prints a
// serialized DeleteResponse, reporting the init as killed (128 + SIGKILL) now.
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { task, timestampFromDate } from "@tsrunc/protocol/shim";
import { BundleFile, readPidFile } from "@tsrunc/shim-contract/bundle-files";
import { identifierProblem } from "@tsrunc/shim-contract/identifiers";
import { runcRootFor } from "@tsrunc/shim-contract/roots";
import type { ShimFlags } from "@tsrunc/shim-contract/shim-flags";
import { removeShimSocket } from "@tsrunc/shim-contract/socket-path";
import { unmountRootfs } from "../mount.js";
import { isRuncError, Runc } from "../runc/index.js";

export async function deleteShim(flags: ShimFlags, cwd = process.cwd()): Promise<Uint8Array> {
  const problem = identifierProblem(flags.id) ?? identifierProblem(flags.namespace);
  if (problem) throw new Error(`invalid id or namespace: ${problem}`);
  const bundle = resolve(flags.bundle || cwd);
  let saved: { binary?: string; root?: string } = {};
  try {
    saved = JSON.parse(await readFile(join(bundle, BundleFile.runcOptions), "utf8"));
  } catch {
    // Create never ran (or failed early): only the defaults can have been used.
  }
  const root = saved.root || runcRootFor(flags.namespace);
  const runc = new Runc({ binary: saved.binary || "runc", root, tmpDir: bundle });
  try {
    await runc.delete(flags.id, { force: true });
  } catch (err) {
    if (!isRuncError(err, "not-found")) throw err;
  }
  await unmountRootfs(bundle);
  // No pid file: the init was never created.
  const pid = (await readPidFile(bundle, BundleFile.initPid)) ?? 0;
  // The dead server's socket: only this container's own (a pod's shared socket may be alive).
  await removeShimSocket(flags.address, flags.namespace, flags.id);
  return task.DeleteResponse.encode({ pid, exitStatus: 128 + 9, exitedAt: timestampFromDate(new Date()) });
}
