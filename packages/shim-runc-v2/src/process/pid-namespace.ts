// Whether a container has a pid namespace of its own. When it has not (it joins its pod's, or
// the host's), the kernel does not end the rest of its processes when its init exits: they live
// on, holding the container's stdout/stderr open and its cgroup busy. The shim then kills them
// itself before it reports the exit, as containerd's Go shim does.
import { readFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * True unless the bundle's config.json gives the container a new pid namespace (a "pid" entry
 * without a path). A spec that cannot be parsed counts as shared (killing what is left is the
 * safe side); no config.json at all (runc cannot have created anything then) as not shared.
 */
export async function sharesPidNamespace(bundle: string): Promise<boolean> {
  let text: string;
  try {
    // Asynchronous: in a grouped shim, Create must not hold up the other containers' calls.
    text = await readFile(join(bundle, "config.json"), "utf8");
  } catch {
    return false;
  }
  try {
    const spec = JSON.parse(text) as { linux?: { namespaces?: { type?: string; path?: string }[] } };
    return !(spec.linux?.namespaces ?? []).some((ns) => ns.type === "pid" && !ns.path);
  } catch {
    return true;
  }
}
