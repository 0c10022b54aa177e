// The runc option ShimCgroup: the long-lived server goes into that cgroup (containerd's Go shim
// does this in `start`), so that an operator can account for and limit the shims themselves. On
// a cgroup v1 host the pid goes into every controller that has the path; on a unified (v2) host
// into the one tree. The server moves itself as it starts, where the options are decoded anyway:
// doing it in `start` meant loading the protocol module there, 5 ms of every container start.
// A path that exists nowhere is fatal: the server logs why and exits before serving.
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { join, posix } from "node:path";

const root = "/sys/fs/cgroup";

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
