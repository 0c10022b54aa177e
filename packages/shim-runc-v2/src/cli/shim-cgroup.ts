// The runc option ShimCgroup: `start` puts the long-lived server into that cgroup (as containerd's
// Go shim does), so that an operator can account for and limit the shims themselves. On a
// cgroup v1 host the pid goes into every controller that has the path; on a unified (v2) host
// into the one tree. A path that exists nowhere fails the start, with the path in the message.
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join, posix } from "node:path";
import { Any, runcoptions, unpackAnyAs } from "@tsrunc/protocol/shim";

const root = "/sys/fs/cgroup";

/** The ShimCgroup named in start's stdin options (a serialized runc Options Any), if any. */
export function shimCgroupOf(stdinOptions: Uint8Array): string | undefined {
  if (stdinOptions.length === 0) return undefined;
  const any = Any.decode(stdinOptions);
  if (any.typeUrl !== runcoptions.Options.typeName) return undefined;
  return unpackAnyAs(any, runcoptions.Options).shimCgroup || undefined;
}

export function moveIntoCgroup(path: string, pid: number): void {
  const rel = posix.normalize(`/${path}`);
  if (rel.split("/").includes("..") || rel.includes("\0"))
    throw new Error(`invalid shim cgroup ${JSON.stringify(path)}`);
  const unified = existsSync(join(root, "cgroup.controllers"));
  const dirs = unified
    ? [join(root, rel)]
    : readdirSync(root).map((controller) => join(root, controller, rel));
  const targets = dirs.filter((d) => existsSync(join(d, "cgroup.procs")));
  if (targets.length === 0) throw new Error(`shim cgroup ${rel} does not exist`);
  for (const d of targets) writeFileSync(join(d, "cgroup.procs"), String(pid));
}
