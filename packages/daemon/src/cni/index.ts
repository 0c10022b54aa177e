export type { NetworkConfList, PluginConf } from "./conf.js";
export { loadNetwork, parseConf } from "./conf.js";
export { CniPluginError } from "./errors.js";
export { NETWORKS_LABEL, type NetRequest, PORTS_LABEL, parseNetLabels } from "./labels.js";
export {
  NET_STATUS_EXTENSION,
  NET_STATUS_TYPE_URL,
  NetworkManager,
  type NetworkOptions,
} from "./network-manager.js";
export type { CniResult } from "./result.js";
export { type Attachment, CniRunner, type PortMapping } from "./runner.js";
