// The runtime-spec (config.json) a container gets, built on the client as ctr builds it:
// containerd's default Unix spec (oci/spec.go populateDefaultUnixSpec, plus the default device
// rules of WithDefaultUnixDevices), then the options of `tsctl run` applied in ctr's order.
// With --rootfs there is no image config, so the process gets the default PATH, as an image
// without an Env would.

import type { OciProcess, OciSpec } from "@tsrunc/protocol";
import { currentCapabilities } from "./capabilities.js";
import { hostDevices, type OciLinuxDevice } from "./devices.js";
import { checkIdentifier } from "./identifiers.js";
import { type OciMount, parseUser, replaceOrAppendEnv, resolveUser } from "./spec-options.js";

/** runtime-spec version that containerd 1.6 writes. */
export const OCI_VERSION = "1.0.2-dev";
export const DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export interface OciDeviceCgroup {
  allow: boolean;
  type?: string;
  major?: number;
  minor?: number;
  access?: string;
}

export interface OciLinux {
  resources?: { devices?: OciDeviceCgroup[]; [key: string]: unknown };
  cgroupsPath?: string;
  namespaces?: { type: string; path?: string }[];
  devices?: OciLinuxDevice[];
  maskedPaths?: string[];
  readonlyPaths?: string[];
  [key: string]: unknown;
}

/** What a spec built here looks like (fields present that the default spec always sets). */
export interface UnixSpec extends OciSpec {
  process: OciProcess;
  root: { path: string; readonly?: boolean };
  mounts: OciMount[];
  linux: OciLinux;
}

export function defaultUnixCaps(): string[] {
  return [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
  ];
}

export function defaultMounts(): OciMount[] {
  const tmpfs = ["nosuid", "strictatime", "mode=755", "size=65536k"];
  return [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/dev", type: "tmpfs", source: "tmpfs", options: [...tmpfs] },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    {
      destination: "/dev/shm",
      type: "tmpfs",
      source: "shm",
      options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
    { destination: "/run", type: "tmpfs", source: "tmpfs", options: [...tmpfs] },
  ];
}

export const DEFAULT_MASKED_PATHS: readonly string[] = [
  "/proc/acpi",
  "/proc/asound",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/sys/firmware",
  "/proc/scsi",
];

export const DEFAULT_READONLY_PATHS: readonly string[] = [
  "/proc/bus",
  "/proc/fs",
  "/proc/irq",
  "/proc/sys",
  "/proc/sysrq-trigger",
];

/** Device cgroup rules of WithDefaultUnixDevices: null, random, full, tty, zero, urandom, console, pts, ptmx. */
export function defaultUnixDeviceRules(): OciDeviceCgroup[] {
  const c = (major: number, minor?: number): OciDeviceCgroup =>
    minor === undefined
      ? { allow: true, type: "c", major, access: "rwm" }
      : { allow: true, type: "c", major, minor, access: "rwm" };
  return [c(1, 3), c(1, 8), c(1, 7), c(5, 0), c(1, 5), c(1, 9), c(5, 1), c(136), c(5, 2)];
}

/** containerd's default Unix spec for container `id` in `namespace` (rootfs "rootfs", no args). */
export function defaultUnixSpec(namespace: string, id: string): UnixSpec {
  checkIdentifier(namespace, "namespace");
  checkIdentifier(id, "container id");
  const caps = defaultUnixCaps();
  return {
    ociVersion: OCI_VERSION,
    root: { path: "rootfs" },
    process: {
      cwd: "/",
      noNewPrivileges: true,
      user: { uid: 0, gid: 0 },
      capabilities: { bounding: [...caps], permitted: [...caps], effective: [...caps] },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
    },
    mounts: defaultMounts(),
    linux: {
      maskedPaths: [...DEFAULT_MASKED_PATHS],
      readonlyPaths: [...DEFAULT_READONLY_PATHS],
      cgroupsPath: `/${namespace}/${id}`,
      resources: { devices: [{ allow: false, access: "rwm" }] },
      namespaces: ["pid", "ipc", "uts", "mount", "network"].map((type) => ({ type })),
    },
  };
}

export interface SpecOptions {
  namespace: string;
  id: string;
  /** The process's argv (required by runc; leave out only to fill it later). */
  args?: string[];
  /** NAME=VALUE entries merged over `baseEnv` (a bare NAME unsets it). */
  env?: string[];
  /** What `env` is merged over: the image's Env, or the default PATH when there is none. */
  baseEnv?: string[];
  cwd?: string;
  /** `UID[:GID]`; names are looked up in the rootfs's /etc/passwd and /etc/group. */
  user?: string;
  /** Give the process a terminal (adds TERM=xterm unless TERM is set). */
  tty?: boolean;
  hostname?: string;
  /** Mount the rootfs read-only. */
  readOnly?: boolean;
  /** Every capability of the caller, no masked/read-only paths, writable sysfs, all devices. */
  privileged?: boolean;
  /** With privileged: also create the host's /dev nodes in the container (default true, as ctr). */
  hostDevices?: boolean;
  /** Appended after the default mounts. */
  mounts?: OciMount[];
  /** Absolute rootfs directory (spec.root.path); default "rootfs" inside the bundle. */
  rootfs?: string;
  /** Spec annotations (ctr copies the container's labels here). */
  annotations?: Record<string, string>;
}

/** Builds the spec for `tsctl run` (and for library users who want ctr's defaults). */
export function buildSpec(o: SpecOptions): UnixSpec {
  const s = defaultUnixSpec(o.namespace, o.id);
  s.linux.resources!.devices!.push(...defaultUnixDeviceRules());
  s.process.env = replaceOrAppendEnv(
    o.baseEnv !== undefined && o.baseEnv.length > 0 ? o.baseEnv : [DEFAULT_PATH_ENV],
    o.env ?? [],
  );
  if (o.mounts !== undefined) s.mounts.push(...o.mounts.map((m) => ({ ...m })));
  if (o.rootfs !== undefined) s.root.path = o.rootfs;
  if (o.readOnly) s.root.readonly = true;
  if (o.args !== undefined) s.process.args = [...o.args];
  if (o.cwd !== undefined && o.cwd !== "") s.process.cwd = o.cwd;
  if (o.user !== undefined && o.user !== "") {
    const rootfs = s.root.path.startsWith("/") ? s.root.path : undefined;
    const u = resolveUser(parseUser(o.user), rootfs);
    s.process.user = { uid: u.uid, gid: u.gid };
    if (u.additionalGids !== undefined) s.process.user.additionalGids = u.additionalGids;
  }
  if (o.tty) applyTerminal(s.process);
  if (o.privileged) applyPrivileged(s, o.hostDevices ?? true);
  if (o.hostname !== undefined && o.hostname !== "") s.hostname = o.hostname;
  if (o.annotations !== undefined && Object.keys(o.annotations).length > 0) {
    s.annotations = { ...(s.annotations ?? {}), ...o.annotations };
  }
  return s;
}

/** Marks a process as having a terminal, as containerd's WithTTY (without a duplicate TERM). */
export function applyTerminal(p: OciProcess): void {
  p.terminal = true;
  const env = p.env ?? [];
  if (!env.some((e) => e.startsWith("TERM="))) p.env = [...env, "TERM=xterm"];
}

/** containerd's WithPrivileged + WithAllDevicesAllowed (+ WithHostDevices). */
export function applyPrivileged(s: UnixSpec, withHostDevices: boolean): void {
  const caps = currentCapabilities();
  s.process.capabilities = { bounding: [...caps], permitted: [...caps], effective: [...caps] };
  delete s.linux.maskedPaths;
  delete s.linux.readonlyPaths;
  for (const m of s.mounts) {
    if (m.type === "sysfs" || m.type === "cgroup") m.options = m.options?.map((x) => (x === "ro" ? "rw" : x));
  }
  delete s.process.apparmorProfile;
  delete s.process.selinuxLabel;
  delete s.linux.seccomp;
  s.linux.resources = { ...(s.linux.resources ?? {}), devices: [{ allow: true, access: "rwm" }] };
  if (withHostDevices) s.linux.devices = [...(s.linux.devices ?? []), ...hostDevices()];
}

/**
 * The process of an exec, as ctr's `tasks exec` derives it from the container's spec: the
 * container's process with new args, terminal, and optionally cwd, user and more env.
 */
export function execProcess(
  spec: OciSpec,
  o: { args: string[]; tty?: boolean; cwd?: string; user?: string; env?: string[] },
): OciProcess {
  const base: OciProcess = spec.process ?? { cwd: "/", user: { uid: 0, gid: 0 } };
  const p: OciProcess = structuredClone(base);
  p.args = [...o.args];
  p.terminal = o.tty === true;
  if (!p.terminal) delete p.consoleSize;
  if (o.env !== undefined && o.env.length > 0) p.env = replaceOrAppendEnv(p.env ?? [], o.env);
  if (o.tty) applyTerminal(p);
  if (o.cwd !== undefined && o.cwd !== "") p.cwd = o.cwd;
  if (o.user !== undefined && o.user !== "") {
    const root = spec.root?.path;
    const u = resolveUser(parseUser(o.user), root?.startsWith("/") ? root : undefined);
    p.user = { uid: u.uid, gid: u.gid };
    if (u.additionalGids !== undefined) p.user.additionalGids = u.additionalGids;
  }
  return p;
}
