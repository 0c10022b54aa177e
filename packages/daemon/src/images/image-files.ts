// Reads a file of an unpacked image without mounting it: through the snapshot's layer
// directories, newest first, as overlayfs would merge them — a whiteout (0/0 character device)
// hides what is below, an opaque directory (trusted.overlay.opaque=y) hides the lower layers'
// entries of that directory, and symlinks are resolved inside the image's root (an absolute
// target is taken from the image's "/", ".." stops at it), never on the host. Nothing is mounted,
// so nothing can be left mounted.

import { constants as fsc, type Stats } from "node:fs";
import { lstat, open, readlink } from "node:fs/promises";
import { join, posix } from "node:path";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { execa } from "execa";

const maxSymlinks = 40;

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await lstat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw err;
  }
}

const isWhiteout = (st: Stats) => st.isCharacterDevice() && st.rdev === 0;

async function isOpaque(dir: string): Promise<boolean> {
  const r = await execa("getfattr", ["--only-values", "-n", "trusted.overlay.opaque", "--", dir], {
    reject: false,
    stdin: "ignore",
    encoding: "utf8",
  });
  return r.exitCode === 0 && String(r.stdout).trim() === "y";
}

/**
 * The bytes of `path` (absolute, inside the image) in the merged view of `layers` (directories,
 * newest first); undefined when it does not exist or is not a regular file. ResourceExhausted
 * when larger than `maxBytes`.
 */
export async function readImageFile(
  layers: readonly string[],
  path: string,
  maxBytes = 4 * 1024 * 1024,
): Promise<Buffer | undefined> {
  const overlay = layers.length > 1;
  let components = splitPath(path);
  for (let links = 0; links <= maxSymlinks; links++) {
    let visible = layers.map((_, i) => i);
    let restart: string[] | undefined;
    for (let i = 0; i < components.length; i++) {
      const prefix = components.slice(0, i + 1);
      const last = i === components.length - 1;
      let found: { layer: number; st: Stats } | undefined;
      const below: number[] = [];
      for (let v = 0; v < visible.length; v++) {
        const li = visible[v]!;
        const p = join(layers[li]!, ...prefix);
        const st = await lstatOrUndefined(p);
        if (!st) continue;
        if (isWhiteout(st)) break;
        if (!found) {
          found = { layer: li, st };
          if (!st.isDirectory()) break;
          below.push(li);
        } else if (st.isDirectory()) {
          below.push(li);
        } else {
          break; // a file under a directory of an upper layer is hidden by it
        }
        // An opaque directory hides the lower layers' entries in it.
        if (overlay && v < visible.length - 1 && (await isOpaque(p))) break;
      }
      if (!found) return undefined;
      const full = join(layers[found.layer]!, ...prefix);
      if (found.st.isSymbolicLink()) {
        const target = await readlink(full);
        const base = target.startsWith("/") ? "/" : `/${components.slice(0, i).join("/")}`;
        restart = [...splitPath(posix.join(base, target)), ...components.slice(i + 1)];
        break;
      }
      if (found.st.isDirectory()) {
        if (last) return undefined;
        visible = below;
        continue;
      }
      if (!last || !found.st.isFile()) return undefined;
      return await readRegular(full, maxBytes, path);
    }
    if (!restart) return undefined;
    components = restart;
  }
  throw new TtrpcError(Code.InvalidArgument, `${path} in the image: too many levels of symbolic links`);
}

/** Absolute path → its components, with "." and ".." resolved and ".." stopping at "/". */
function splitPath(path: string): string[] {
  const out: string[] = [];
  for (const c of path.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") out.pop();
    else out.push(c);
  }
  return out;
}

async function readRegular(path: string, maxBytes: number, what: string): Promise<Buffer> {
  const fh = await open(path, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    const st = await fh.stat();
    if (!st.isFile())
      throw new TtrpcError(Code.FailedPrecondition, `${what} in the image is not a regular file`);
    if (st.size > maxBytes)
      throw new TtrpcError(Code.ResourceExhausted, `${what} in the image is larger than ${maxBytes} bytes`);
    return await fh.readFile();
  } finally {
    await fh.close();
  }
}
