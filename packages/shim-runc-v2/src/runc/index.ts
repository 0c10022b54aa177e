// The shim's runc driver: a typed wrapper around the runc CLI.
export { Runc } from "./runc.js";
export {
  classifyRuncMessage,
  isRuncError,
  RUNC_ERROR_CODES,
  RuncError,
  type RuncErrorKind,
} from "./runc-errors.js";
export { runcErrorToStatus } from "./runc-status.js";
export * from "./runc-types.js";
