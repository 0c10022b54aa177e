// The familiar form of an image name made full, as containerd and nerdctl normalize what a
// person types ("busybox" → "docker.io/library/busybox:latest"), so that `tsctl run busybox`
// finds the image `tsctl images pull busybox` recorded. Only names, no validation: the daemon
// parses references properly; this is a second guess when a name as typed is not found.

export const DEFAULT_DOMAIN = "docker.io";

/** "busybox" → "docker.io/library/busybox:latest"; "host:5000/a" → "host:5000/a:latest". */
export function normalizeImageName(name: string): string {
  const at = name.indexOf("@");
  const path = at < 0 ? name : name.slice(0, at);
  const digest = at < 0 ? "" : name.slice(at);
  const slash = path.indexOf("/");
  const first = slash < 0 ? "" : path.slice(0, slash);
  const hasDomain = first !== "" && (first.includes(".") || first.includes(":") || first === "localhost");
  let full = hasDomain ? path : `${DEFAULT_DOMAIN}/${slash < 0 ? `library/${path}` : path}`;
  if (full.startsWith(`${DEFAULT_DOMAIN}/`) && full.split("/").length === 2)
    full = `${DEFAULT_DOMAIN}/library/${full.slice(DEFAULT_DOMAIN.length + 1)}`;
  const lastComponent = full.slice(full.lastIndexOf("/") + 1);
  if (!lastComponent.includes(":") && digest === "") full += ":latest";
  return full + digest;
}
