// One plugin invocation, as the CNI spec's protocol has it: the command and arguments in
// CNI_* environment variables, the network configuration on stdin, a result or an error
// object on stdout. Plugins run with their own deadline: a teardown must never inherit the
// expired deadline of the request that triggered it.
import { access, constants } from "node:fs/promises";
import { join } from "node:path";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { execa } from "execa";
import { type CniErrorBody, CniPluginError } from "./errors.js";

export type CniCommand = "ADD" | "DEL" | "CHECK" | "VERSION" | "STATUS" | "GC";

export interface PluginCall {
  command: CniCommand;
  /** The plugin's type: a file in one of binDirs. */
  type: string;
  /** For messages: the network the call is for. */
  network: string;
  binDirs: readonly string[];
  containerId?: string;
  /** Path to the network namespace; "" when it no longer exists (DEL). */
  netns?: string;
  ifname?: string;
  /** CNI_ARGS: key=value pairs. */
  args?: ReadonlyArray<[string, string]>;
  /** The configuration the plugin reads on stdin. */
  config: Record<string, unknown>;
  timeoutMs?: number;
}

/** The first executable `type` in binDirs, or NotFound naming the directories searched. */
export async function findPlugin(type: string, binDirs: readonly string[], network: string): Promise<string> {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(type))
    throw new TtrpcError(
      Code.InvalidArgument,
      `network ${JSON.stringify(network)}: invalid plugin type ${type}`,
    );
  for (const dir of binDirs) {
    const p = join(dir, type);
    try {
      await access(p, constants.X_OK);
      return p;
    } catch {}
  }
  throw new TtrpcError(
    Code.NotFound,
    `network ${JSON.stringify(network)}: CNI plugin ${JSON.stringify(type)} not found in ${binDirs.join(":")}`,
  );
}

/** Runs the plugin; returns its parsed stdout (undefined when it printed nothing, as DEL may). */
export async function execPlugin(call: PluginCall): Promise<unknown> {
  const path = await findPlugin(call.type, call.binDirs, call.network);
  const env: Record<string, string> = {
    CNI_COMMAND: call.command,
    CNI_PATH: call.binDirs.join(":"),
    // Plugins call iptables, ip and their IPAM plugin; give them the system's PATH only.
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  };
  if (call.containerId !== undefined) env.CNI_CONTAINERID = call.containerId;
  if (call.netns !== undefined) env.CNI_NETNS = call.netns;
  if (call.ifname !== undefined) env.CNI_IFNAME = call.ifname;
  if (call.args?.length) env.CNI_ARGS = call.args.map(([k, v]) => `${k}=${v}`).join(";");
  const res = await execa(path, [], {
    env,
    extendEnv: false,
    input: JSON.stringify(call.config),
    reject: false,
    timeout: call.timeoutMs ?? 60_000,
    stripFinalNewline: true,
    maxBuffer: 4 * 1024 * 1024,
  });
  const out = String(res.stdout ?? "").trim();
  if (res.timedOut)
    throw new TtrpcError(
      Code.DeadlineExceeded,
      `network ${JSON.stringify(call.network)}: CNI ${call.command} ${call.type} did not answer within ${call.timeoutMs ?? 60_000} ms`,
    );
  if (res.exitCode !== 0) {
    let body: CniErrorBody | undefined;
    try {
      const o = JSON.parse(out) as Partial<CniErrorBody>;
      if (typeof o.code === "number" && typeof o.msg === "string")
        body = {
          code: o.code,
          msg: o.msg,
          ...(typeof o.details === "string" && o.details ? { details: o.details } : {}),
        };
    } catch {}
    // A plugin that died without the spec's error object: its stderr is all there is.
    body ??= {
      code: 999,
      msg: (String(res.stderr ?? "").trim() || out || `exited with ${res.exitCode ?? res.signal}`).slice(
        0,
        2000,
      ),
    };
    throw new CniPluginError(call.type, call.network, call.command, body);
  }
  if (out === "") return undefined;
  try {
    return JSON.parse(out) as unknown;
  } catch {
    throw new TtrpcError(
      Code.Unknown,
      `network ${JSON.stringify(call.network)}: CNI ${call.command} ${call.type} printed something that is not JSON`,
    );
  }
}
