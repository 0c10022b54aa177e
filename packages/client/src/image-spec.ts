// The runtime-spec of a container made from an image, as containerd's WithImageConfigArgs makes
// it on top of ctr's defaults: args = Entrypoint + Cmd (a command given replaces Cmd and keeps
// the Entrypoint, as nerdctl and the CRI do), Env = the image's (the default PATH only when the
// image has none) with --env on top, cwd = WorkingDir unless --cwd, and the user the daemon
// resolved in the image's /etc/passwd and /etc/group (the image's User, or --user). The rootfs is
// the bundle's "rootfs", where the shim mounts the container's snapshot.

import { Code, TtrpcError } from "@tsrunc/ttrpc";
import type { ImageConfigResult } from "./images.js";
import { buildSpec, type SpecOptions, type UnixSpec } from "./spec.js";

export interface ImageSpecOptions extends Omit<SpecOptions, "args" | "baseEnv" | "user" | "rootfs"> {
  /** The image, from ImagesApi.config (with the --user asked for already resolved). */
  image: ImageConfigResult;
  /** The image's name, for messages. */
  imageName: string;
  /** What follows the ID on the command line: replaces the image's Cmd. */
  command?: string[];
}

/** The process's argv: Entrypoint + (command, or the image's Cmd). */
export function imageArgs(image: ImageConfigResult, command: readonly string[] = []): string[] {
  const c = image.config.config ?? {};
  return [...(c.Entrypoint ?? []), ...(command.length > 0 ? command : (c.Cmd ?? []))];
}

export function buildImageSpec(o: ImageSpecOptions): UnixSpec {
  const { image, imageName, command, ...rest } = o;
  const args = imageArgs(image, command);
  if (args.length === 0) {
    throw new TtrpcError(
      Code.InvalidArgument,
      `image ${imageName} has no Entrypoint or Cmd: give a command after the container ID`,
    );
  }
  const c = image.config.config ?? {};
  const cwd = rest.cwd !== undefined && rest.cwd !== "" ? rest.cwd : c.WorkingDir || "/";
  const spec = buildSpec({ ...rest, args, baseEnv: c.Env ?? [], cwd });
  spec.process.user = { uid: image.uid, gid: image.gid };
  if (image.additionalGids.length > 0) spec.process.user.additionalGids = [...image.additionalGids];
  return spec;
}
