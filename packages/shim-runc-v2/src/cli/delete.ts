// The `delete` verb: containerd runs it when the shim server is gone (it crashed or was
// SIGKILLed) to clean up what the server would have: the runc container (force-deleted, which
// kills what is left of it), the rootfs mount, and the dead server's socket. It prints a
// serialized DeleteResponse, reporting the init as killed (128 + SIGKILL) now.
import { readFile, unlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { task, timestampFromDate } from "@tsrunc/protocol/shim";
import { identifierProblem } from "../identifiers.js";
import { unmountRootfs } from "../mount.js";
import { isRuncError, Runc } from "../runc/index.js";
import { socketPath } from "../socket-path.js";
import type { ShimFlags } from "./flags.js";

export async function deleteShim(flags: ShimFlags, cwd = process.cwd()): Promise<Uint8Array> {
  const problem = identifierProblem(flags.id) ?? identifierProblem(flags.namespace);
  if (problem) throw new Error(`invalid id or namespace: ${problem}`);
  const bundle = resolve(flags.bundle || cwd);
  let saved: { binary?: string; root?: string } = {};
  try {
    saved = JSON.parse(await readFile(join(bundle, "tsrunc-options.json"), "utf8"));
  } catch {
    // Create never ran (or failed early): only the defaults can have been used.
  }
  const root = saved.root || join(process.env.TSRUNC_RUNC_ROOT || "/run/tsrunc/runc", flags.namespace);
  const runc = new Runc({ binary: saved.binary || "runc", root, tmpDir: bundle });
  try {
    await runc.delete(flags.id, { force: true });
  } catch (err) {
    if (!isRuncError(err, "not-found")) throw err;
  }
  await unmountRootfs(bundle);
  let pid = 0;
  try {
    pid = Number.parseInt(await readFile(join(bundle, "init.pid"), "utf8"), 10) || 0;
  } catch {
    // no pid file: the init was never created
  }
  // The dead server's socket: only this container's own (a pod's shared socket may be alive).
  await unlink(socketPath(flags.address, flags.namespace, flags.id)).catch(() => {});
  return task.DeleteResponse.encode({ pid, exitStatus: 128 + 9, exitedAt: timestampFromDate(new Date()) });
}
