// @tsrunc/daemon: tsruncd's parts, for tests and embedding. The executable is tsruncd.ts.
export { type DaemonConfig, parseConfig } from "./config.js";
export { type RunningDaemon, startDaemon } from "./daemon.js";
export { EventExchange } from "./events/exchange.js";
export { KeyedMutex } from "./keyed-mutex.js";
export { type BootReport, boot } from "./runtime/boot.js";
export { TaskManager } from "./runtime/task-manager.js";
export { daemonVersion } from "./version.js";
