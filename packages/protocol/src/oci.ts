// The OCI runtime-spec types that containerd carries inside google.protobuf.Any as JSON (not
// protobuf): their Go structs are registered with typeurl under
// "types.containerd.io/opencontainers/runtime-spec/<major>/<Name>", and the Any's value is the
// struct's encoding/json output. These interfaces name the fields we use and let the rest
// through (`[key: string]: unknown`); field names are the runtime-spec's JSON names.
// Note: JSON numbers above 2^53 (e.g. a memory limit of MaxInt64) lose precision in JSON.parse.

export const RUNTIME_SPEC_TYPE_URL_PREFIX = "types.containerd.io/opencontainers/runtime-spec/1/";

export interface OciUser {
  uid: number;
  gid: number;
  umask?: number;
  additionalGids?: number[];
  username?: string;
  [key: string]: unknown;
}

export interface OciCapabilities {
  bounding?: string[];
  effective?: string[];
  inheritable?: string[];
  permitted?: string[];
  ambient?: string[];
}

export interface OciRlimit {
  type: string;
  hard: number;
  soft: number;
}

/** runtime-spec Process: ExecProcessRequest.spec. */
export interface OciProcess {
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  user: OciUser;
  args?: string[];
  commandLine?: string;
  env?: string[];
  cwd: string;
  capabilities?: OciCapabilities;
  rlimits?: OciRlimit[];
  noNewPrivileges?: boolean;
  apparmorProfile?: string;
  oomScoreAdj?: number;
  selinuxLabel?: string;
  [key: string]: unknown;
}

export interface OciLinuxDeviceCgroup {
  allow: boolean;
  type?: string;
  major?: number | null;
  minor?: number | null;
  access?: string;
}

export interface OciLinuxMemory {
  limit?: number;
  reservation?: number;
  swap?: number;
  kernel?: number;
  kernelTCP?: number;
  swappiness?: number;
  disableOOMKiller?: boolean;
  useHierarchy?: boolean;
  checkBeforeUpdate?: boolean;
  [key: string]: unknown;
}

export interface OciLinuxCPU {
  shares?: number;
  quota?: number;
  burst?: number;
  period?: number;
  realtimeRuntime?: number;
  realtimePeriod?: number;
  cpus?: string;
  mems?: string;
  idle?: number;
  [key: string]: unknown;
}

/** runtime-spec LinuxResources: UpdateTaskRequest.resources on Linux. */
export interface OciLinuxResources {
  devices?: OciLinuxDeviceCgroup[];
  memory?: OciLinuxMemory;
  cpu?: OciLinuxCPU;
  pids?: { limit: number };
  blockIO?: Record<string, unknown>;
  hugepageLimits?: { pageSize: string; limit: number }[];
  network?: Record<string, unknown>;
  rdma?: Record<string, { hcaHandles?: number; hcaObjects?: number }>;
  unified?: Record<string, string>;
  [key: string]: unknown;
}

/** runtime-spec Spec (config.json): Container.spec in the containers API. */
export interface OciSpec {
  ociVersion: string;
  process?: OciProcess;
  root?: { path: string; readonly?: boolean };
  hostname?: string;
  mounts?: { destination: string; type?: string; source?: string; options?: string[] }[];
  annotations?: Record<string, string>;
  linux?: Record<string, unknown> & { resources?: OciLinuxResources };
  [key: string]: unknown;
}

/** runtime-spec WindowsResources: UpdateTaskRequest.resources on Windows (we only carry it). */
export type OciWindowsResources = Record<string, unknown>;
