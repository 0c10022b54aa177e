// ctr puts a container's stdio fifos in /run/containerd/fifo unless told otherwise; the tests' ctr
// runners (containerd.ts for real containerd, ctr-daemon.ts for tsruncd) keep them in the test's
// temp root instead.

/** `args` with `--fifo-dir dir` after `run`, `task start` and `task exec` (the verbs that make fifos), unless given. */
export function withFifoDir(args: readonly string[], dir: string): string[] {
  const a = [...args];
  if (a.includes("--fifo-dir")) return a;
  const at =
    a[0] === "run"
      ? 1
      : ["task", "tasks", "t"].includes(a[0] ?? "") && ["start", "exec"].includes(a[1] ?? "")
        ? 2
        : -1;
  if (at > 0) a.splice(at, 0, "--fifo-dir", dir);
  return a;
}
