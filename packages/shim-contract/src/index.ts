// @tsrunc/shim-contract: what a runtime-v2 shim and its caller (containerd, tsruncd, our tests
// and benches) both know. Subpath exports (`@tsrunc/shim-contract/bundle-files`, …) let the shim's
// start-up path load only the small pieces it needs.
export * from "./bundle-files.js";
export * from "./check-identifier.js";
export * from "./identifiers.js";
export * from "./invocation.js";
export * from "./launcher.js";
export * from "./roots.js";
export * from "./runtime-name.js";
export * from "./shim-flags.js";
export * from "./socket-path.js";
