// Defaults shared by the library and tsctl, in a module of their own so that tsctl's entry can
// read them without loading the protocol.

/** Where tsruncd listens unless told otherwise. */
export const DEFAULT_ADDRESS = "/run/tsrunc/tsruncd.sock";
export const DEFAULT_NAMESPACE = "default";
/** Root of the per-process fifo directories (<root>/<namespace>/<id>-<random>/). */
export const DEFAULT_FIFO_ROOT = "/run/tsrunc/fifo";
/** The runtime a container gets unless told otherwise. */
export const DEFAULT_RUNTIME = "io.containerd.tsrunc.v2";
