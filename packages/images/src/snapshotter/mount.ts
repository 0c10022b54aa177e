// Mounts as containerd's snapshotters describe them, and the helpers that perform them with
// util-linux's mount(8) (the shim mounts a container's rootfs itself; these serve the overlay
// support probe, tests, and daemon-side work on a snapshot's merged view).

import { existsSync } from "node:fs";
import { Code, TtrpcError } from "@tsrunc/ttrpc/status";
import { execa } from "execa";

/** A mount as containerd's API carries it (containerd.types.Mount). */
export interface Mount {
  type: string;
  source: string;
  options: string[];
}

/** Mount options longer than a page are refused by the kernel. */
export const maxMountOptions = 4095;

/** Whether the overlay module has an `index` feature (then containerd passes index=off). */
export function overlayHasIndex(): boolean {
  return existsSync("/sys/module/overlay/parameters/index");
}

/** Performs `mounts` on `target`, in order (each on top of the last). */
export async function mountAll(mounts: readonly Mount[], target: string): Promise<void> {
  for (const m of mounts) {
    const opts = m.options.join(",");
    if (opts.length > maxMountOptions)
      throw new TtrpcError(
        Code.FailedPrecondition,
        `mount options are ${opts.length} bytes, more than a page`,
      );
    const args =
      m.type === "bind"
        ? ["-o", opts, m.source, target]
        : ["-t", m.type, ...(opts ? ["-o", opts] : []), m.source, target];
    const r = await execa("mount", args, { reject: false, stdin: "ignore" });
    if (r.exitCode !== 0)
      throw new TtrpcError(
        Code.Unknown,
        `mount ${m.type} on ${target}: ${String(r.stderr).trim() || r.exitCode}`,
      );
  }
}

/** Unmounts everything on `target` (recursively, each layer of stacked mounts). */
export async function unmountAll(target: string): Promise<void> {
  for (let i = 0; i < 32; i++) {
    const r = await execa("umount", ["-R", target], { reject: false, stdin: "ignore" });
    if (r.exitCode !== 0) {
      if (/not mounted|no mount point/i.test(String(r.stderr))) return;
      throw new TtrpcError(Code.Unknown, `umount ${target}: ${String(r.stderr).trim()}`);
    }
  }
}
