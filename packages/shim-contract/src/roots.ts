// Default locations shared by the shim, the daemon, the tests and the benches. Environment
// overrides exist so that tests and benches can put everything under a private temp root.
import { join } from "node:path";

/** runc's state root for containers our shim creates; one subdirectory per namespace. */
export const defaultRuncRoot = "/run/tsrunc/runc";
/** tsruncd's durable root (database, later images). */
export const defaultDaemonRoot = "/var/lib/tsrunc";
/** tsruncd's volatile state (bundles, sockets); gone after a reboot, as containerd's /run. */
export const defaultDaemonState = "/run/tsrunc";
/** tsruncd's ttrpc socket. */
export const defaultDaemonAddress = "/run/tsrunc/tsruncd.sock";

/** The runc root for `namespace`, honouring TSRUNC_RUNC_ROOT. */
export function runcRootFor(namespace: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(env.TSRUNC_RUNC_ROOT || defaultRuncRoot, namespace);
}
