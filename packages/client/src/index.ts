// @tsrunc/client — the typed client of tsruncd (containerd's containers, tasks, events, images
// and snapshots services and our ImageTools over ttrpc), ctr's spec defaults, and ctr-style
// fifo IO. `tsctl` is built on it.

export { KNOWN_CAPABILITIES } from "./capabilities.js";
export {
  type CallOpts,
  type ConnectOptions,
  type Container,
  type ContainerInit,
  ContainersApi,
  type CreateTaskInit,
  connect,
  connectError,
  containerSpec,
  type DaemonVersion,
  DEFAULT_ADDRESS,
  DEFAULT_NAMESPACE,
  type Envelope,
  EventsApi,
  type ExecInit,
  isAny,
  type KillInit,
  type Metric,
  NAMESPACE_METADATA_KEY,
  type Process,
  type ProcessInfo,
  type ProcessRef,
  type SubscribeOptions,
  TasksApi,
  TsruncClient,
  tasktypes,
  type UpdateInit,
} from "./client.js";
export { DEFAULT_RUNTIME } from "./defaults.js";
export { decodeEvent, type EnvelopeJson, envelopeJson } from "./events.js";
export { checkIdentifier, isIdentifier } from "./identifiers.js";
export { buildImageSpec, type ImageSpecOptions, imageArgs } from "./image-spec.js";
export {
  DEFAULT_SNAPSHOTTER,
  type Descriptor,
  type Image,
  type ImageConfigResult,
  ImagesApi,
  type ImportInit,
  type ImportOpts,
  type OciImageConfigFile,
  type OciImageRuntimeConfig,
  type PruneResult,
  type PullInit,
  type PullOpts,
  type PullProgress,
  parseImageConfig,
} from "./images.js";
export {
  type AttachStreams,
  createFifoSet,
  DEFAULT_FIFO_ROOT,
  FifoIO,
  type FifoIOOptions,
  type FifoSet,
  type FifoSetOptions,
  ownedFifoDir,
  removeFifoSet,
  type StdioPaths,
  sweepFifoDirs,
} from "./io.js";
export { timestampJson, toPlain } from "./json.js";
export { DEFAULT_DOMAIN, normalizeImageName } from "./reference.js";
export { parseSignal, signalName } from "./signals.js";
export { type Mount, type PrepareInit, type SnapshotInfo, SnapshotsApi } from "./snapshots.js";
export {
  applyPrivileged,
  applyTerminal,
  buildSpec,
  DEFAULT_MASKED_PATHS,
  DEFAULT_PATH_ENV,
  DEFAULT_READONLY_PATHS,
  defaultMounts,
  defaultUnixCaps,
  defaultUnixDeviceRules,
  defaultUnixSpec,
  execProcess,
  OCI_VERSION,
  type SpecOptions,
  type UnixSpec,
} from "./spec.js";
export {
  checkEnv,
  type OciMount,
  type ParsedUser,
  parseKeyValues,
  parseMountFlag,
  parseUser,
  type ResolvedUser,
  replaceOrAppendEnv,
  resolveUser,
} from "./spec-options.js";
