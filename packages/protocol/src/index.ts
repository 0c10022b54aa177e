// @tsrunc/protocol — the shim-side subset and the daemon's API together. The shim imports
// "@tsrunc/protocol/shim" instead, which does not load the daemon's modules.

export * from "./daemon.js";
export * from "./shim.js";
