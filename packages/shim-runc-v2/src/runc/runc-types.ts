// The types of the runc driver: its options, the options of each call, and what runc answers.
// runc's JSON is typed only as far as the shim reads it; unknown fields are kept (index
// signatures) so newer runc versions pass through unchanged.

/** How the Runc instance invokes runc: the global flags of every invocation. */
export interface RuncOptions {
  /** The runc binary: a name looked up in PATH or a path. containerd's runc Options.BinaryName. */
  binary?: string;
  /** runc `--root`: the state directory. The shim chooses one per namespace. Absolute. */
  root: string;
  /** runc `--log` (always `--log-format json`): every call's runc log lines are appended here. */
  logPath?: string;
  /** runc `--systemd-cgroup`. */
  systemdCgroup?: boolean;
  /** runc `--criu`: the CRIU binary for checkpoint. */
  criu?: string;
  /** runc `--debug`: debug-level lines in the log. */
  debug?: boolean;
  /** runc `--rootless`. Left to runc ("auto") when unset. */
  rootless?: boolean | "auto";
  /**
   * Where each call makes its private temp directory (mode 0700) for its runc log and, for exec,
   * the process spec. Defaults to os.tmpdir(). Every call removes its directory before returning.
   */
  tmpDir?: string;
  /** Default deadline of every call in milliseconds; 0 or unset means none. */
  timeoutMs?: number;
}

/** Options every call accepts. */
export interface CallOptions {
  /** Aborting kills runc (SIGKILL) and rejects with kind "canceled". */
  signal?: AbortSignal;
  /** Overrides RuncOptions.timeoutMs; runc is killed and the call rejects with kind "timeout". */
  timeoutMs?: number;
}

/**
 * Where one of the container's stdio streams goes. runc hands its own fd 0/1/2 to the
 * container's process (when it has no terminal), so this is what runc itself is spawned with.
 * - a number: a file descriptor of this process (e.g. a fifo the shim opened); the caller keeps
 *   ownership and closes it when it wishes (after the call returns is fine: the container holds its own copy).
 * - { path }: the driver opens the file (stdin read-only; stdout/stderr write-only, appending,
 *   created if missing) and closes its copy when runc returns. Opening a fifo waits for its
 *   other end (in libuv's thread pool, not on the event loop): the shim should pass fds for fifos.
 * - "ignore": /dev/null (the default).
 */
export type StdioTarget = number | "ignore" | { path: string };

/** The container process's stdin, stdout and stderr: by name, or as [stdin, stdout, stderr]. */
export type ProcessStdio =
  | { stdin?: StdioTarget; stdout?: StdioTarget; stderr?: StdioTarget }
  | readonly [StdioTarget, StdioTarget, StdioTarget];

export interface CreateOptions extends CallOptions {
  /** runc `--pid-file`: runc writes the init's pid there; create() also returns it. Absolute. */
  pidFile: string;
  /** runc `--console-socket`: for a terminal process, runc sends the pty master there. Absolute. */
  consoleSocket?: string;
  noPivot?: boolean;
  noNewKeyring?: boolean;
  /** runc create always detaches: the call returns once the init is created. */
  detach?: true;
  stdio?: ProcessStdio;
}

export interface ExecOptions extends CallOptions {
  /** runc `--pid-file`. Absolute. */
  pidFile: string;
  /** runc `--console-socket`. Absolute. */
  consoleSocket?: string;
  /** Only detached execs: runc returns once the process runs. */
  detach?: true;
  stdio?: ProcessStdio;
}

export interface KillOptions extends CallOptions {
  /** runc `kill --all`: signal every process of the container. */
  all?: boolean;
}

export interface DeleteOptions extends CallOptions {
  /** runc `delete --force`: kill a running container first. */
  force?: boolean;
}

export interface CheckpointOptions extends CallOptions {
  /** runc `--image-path`. Absolute. */
  imagePath: string;
  /** runc `--work-path` (CRIU's logs go there). Absolute. */
  workPath?: string;
  /** runc `--parent-path`, relative to imagePath as CRIU expects. */
  parentPath?: string;
  leaveRunning?: boolean;
  tcpEstablished?: boolean;
  extUnixSk?: boolean;
  shellJob?: boolean;
  fileLocks?: boolean;
  preDump?: boolean;
  autoDedup?: boolean;
  lazyPages?: boolean;
  manageCgroupsMode?: "soft" | "full" | "strict" | "ignore";
  /** runc `--empty-ns` per namespace type, e.g. "network". */
  emptyNamespaces?: string[];
}

export interface EventsOptions extends CallOptions {
  /** Only `runc events --stats` (one snapshot) is supported. */
  stats?: true;
}

export const RUNC_STATUSES = ["creating", "created", "running", "pausing", "paused", "stopped"] as const;
export type RuncStatus = (typeof RUNC_STATUSES)[number];

export function isRuncStatus(value: unknown): value is RuncStatus {
  return typeof value === "string" && (RUNC_STATUSES as readonly string[]).includes(value);
}

/** `runc state`. */
export interface ContainerState {
  ociVersion: string;
  id: string;
  /** 0 when stopped. */
  pid: number;
  status: RuncStatus;
  bundle: string;
  rootfs: string;
  /** RFC 3339 with nanoseconds, as runc prints it. */
  created: string;
  owner: string;
  annotations: Record<string, string>;
}

/** `runc --version`. */
export interface RuncVersion {
  /** "1.1.5+ds1" */
  version: string;
  commit?: string;
  /** OCI runtime spec version: "1.0.2-dev" */
  spec?: string;
  go?: string;
  libseccomp?: string;
}

/** `runc features` (an OCI runtime-spec "features" document). */
export interface RuncFeatures {
  ociVersionMin?: string;
  ociVersionMax?: string;
  hooks?: string[];
  mountOptions?: string[];
  linux?: {
    namespaces?: string[];
    capabilities?: string[];
    cgroup?: { v1?: boolean; v2?: boolean; systemd?: boolean; systemdUser?: boolean };
    seccomp?: { enabled?: boolean; actions?: string[]; operators?: string[]; archs?: string[] };
    apparmor?: { enabled?: boolean };
    selinux?: { enabled?: boolean };
    [key: string]: unknown;
  };
  annotations?: Record<string, string>;
  [key: string]: unknown;
}

/** A cgroup v1 `usage`-style block in runc's stats. */
export interface MemoryEntry {
  limit?: number;
  usage?: number;
  max?: number;
  failcnt?: number;
}

/** The `data` of `runc events --stats` (runc's types.Stats); the fields the Stats API reads. */
export interface RuncStats {
  cpu?: {
    usage?: {
      total?: number;
      percpu?: number[];
      percpu_kernel?: number[];
      percpu_user?: number[];
      kernel?: number;
      user?: number;
    };
    throttling?: { periods?: number; throttledPeriods?: number; throttledTime?: number };
  };
  memory?: {
    cache?: number;
    usage?: MemoryEntry;
    swap?: MemoryEntry;
    kernel?: MemoryEntry;
    kernelTCP?: MemoryEntry;
    raw?: Record<string, number>;
    use_hierarchy?: boolean;
  };
  pids?: { current?: number; limit?: number };
  blkio?: Record<string, unknown>;
  hugetlb?: Record<string, unknown>;
  network_interfaces?: unknown[];
  [key: string]: unknown;
}

/** An OCI runtime-spec Process, as given to `runc exec --process`. */
export interface ProcessSpec {
  args: string[];
  env?: string[];
  cwd: string;
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  user?: { uid: number; gid: number; umask?: number; additionalGids?: number[] };
  capabilities?: Partial<
    Record<"bounding" | "effective" | "inheritable" | "permitted" | "ambient", string[]>
  >;
  rlimits?: { type: string; hard: number; soft: number }[];
  noNewPrivileges?: boolean;
  apparmorProfile?: string;
  oomScoreAdj?: number;
  selinuxLabel?: string;
  [key: string]: unknown;
}

/** An OCI runtime-spec LinuxResources, as given to `runc update --resources -`. */
export interface LinuxResources {
  devices?: unknown[];
  memory?: {
    limit?: number;
    reservation?: number;
    swap?: number;
    kernel?: number;
    kernelTCP?: number;
    swappiness?: number;
    disableOOMKiller?: boolean;
  };
  cpu?: {
    shares?: number;
    quota?: number;
    period?: number;
    realtimeRuntime?: number;
    realtimePeriod?: number;
    cpus?: string;
    mems?: string;
  };
  pids?: { limit: number };
  blockIO?: Record<string, unknown>;
  hugepageLimits?: { pageSize: string; limit: number }[];
  network?: Record<string, unknown>;
  rdma?: Record<string, unknown>;
  unified?: Record<string, string>;
  [key: string]: unknown;
}
