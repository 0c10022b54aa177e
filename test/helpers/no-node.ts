// A host without Node, for the single-file executables' tests: a command runs in a private mount
// namespace (`unshare -m`, propagation private) in which an empty, non-executable file is
// bind-mounted over every `node` that PATH (the test's and the given one) or the usual bin
// directories could find, and a tmpfs (mode 0755, root's) hides /var/lib, so that the default
// addon cache (/var/lib/tsrunc/addons) is made and used there and vanishes with the namespace.
// The namespace lives as long as a process is in it (containerd, tsruncd, their shims and
// containers): mountNamespaceOf / processesInMountNamespace let a test check that it is gone.
import * as fs from "node:fs";
import * as path from "node:path";

/** The bin directories searched besides the PATHs given. */
const USUAL_BINS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/** The PATH a Node-less host has. */
export const NO_NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// sh: $1 the empty file, $2 the directories to search (colon-separated); then the command.
const SCRIPT = `set -e
empty=$1; dirs=$2; shift 2
seen=" "
IFS=:
for d in $dirs; do
  [ -e "$d/node" ] || continue
  real=$(readlink -f "$d/node")
  case $seen in *" $real "*) continue ;; esac
  seen="$seen$real "
  mount --bind "$empty" "$real"
done
unset IFS
mount -t tmpfs -o mode=0755,size=64m tsr-no-node /var/lib
if command -v node >/dev/null 2>&1; then echo "no-node: node is still found: $(command -v node)" >&2; exit 99; fi
exec "$@"
`;

/**
 * The command line that runs `argv` where no node can be found (see above). `root` is a
 * directory of the test's (the empty file goes there); `pathValue` the PATH the command gets
 * (its directories are searched too).
 */
export function withoutNode(
  root: string,
  pathValue: string,
  argv: string[],
): { file: string; args: string[] } {
  const empty = path.join(root, "no-node");
  if (!fs.existsSync(empty)) fs.writeFileSync(empty, "", { mode: 0o644 });
  const dirs = [...new Set([...pathValue.split(":"), ...(process.env.PATH ?? "").split(":"), ...USUAL_BINS])]
    .filter((d) => d.startsWith("/") && !d.includes(":"))
    .join(":");
  return {
    file: "unshare",
    args: ["-m", "--propagation", "private", "--", "/bin/sh", "-c", SCRIPT, "no-node", empty, dirs, ...argv],
  };
}

/** The mount namespace of a process (`mnt:[4026532…]`), if it exists. */
export function mountNamespaceOf(pid: number): string | undefined {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

/** Now, in the clock ticks (USER_HZ, 100 on Linux) of /proc/PID/stat's start time. */
export function ticksNow(): number {
  return Math.floor(Number.parseFloat(fs.readFileSync("/proc/uptime", "utf8").split(" ")[0] ?? "0") * 100);
}

function startTicks(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  } catch {
    return undefined;
  }
}

/**
 * Pids of the processes in mount namespace `ns` (none once the namespace is gone). A freed
 * namespace's inode number is reused (runc makes one per container, and other tests run
 * containers meanwhile), so with `startedBefore` (ticksNow() taken while the namespace still
 * existed) only processes started before then count: a newer namespace with the same number
 * has none of those.
 */
export function processesInMountNamespace(ns: string, startedBefore?: number): number[] {
  const pids: number[] = [];
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (mountNamespaceOf(pid) !== ns) continue;
    if (startedBefore !== undefined && (startTicks(pid) ?? 0) > startedBefore) continue;
    pids.push(pid);
  }
  return pids;
}
