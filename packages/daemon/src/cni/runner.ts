// Runs a network configuration list for one container, as the CNI spec's list semantics say:
// ADD walks the plugins in order, each getting the previous one's result as prevResult; DEL
// walks them in reverse with the ADD's final result as prevResult; CHECK (0.4.0 and later)
// walks them in order with that result too. Capability arguments (port mappings) reach only
// the plugins that declare the capability, in runtimeConfig.
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import type { NetworkConfList, PluginConf } from "./conf.js";
import { execPlugin } from "./exec-plugin.js";
import { type CniResult, parseResult, versionAtLeast } from "./result.js";

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: "tcp" | "udp";
  hostIP?: string;
}

export interface Attachment {
  /** CNI_CONTAINERID: unique per container on this host (we use `<namespace>-<id>`, as ctr). */
  containerId: string;
  /** The network namespace's path; "" on DEL when it no longer exists. */
  netns: string;
  ifname: string;
  args?: ReadonlyArray<[string, string]>;
  capabilityArgs?: { portMappings?: PortMapping[] };
}

export interface RunnerOptions {
  /** Plugin directories, searched in order (CNI_PATH). */
  binDirs: readonly string[];
  /** Deadline of each plugin call. */
  timeoutMs?: number;
}

export interface AddOutcome {
  /** The last plugin's result as it printed it: what DEL and CHECK get as prevResult. */
  raw: unknown;
  result: CniResult;
}

export class CniRunner {
  constructor(readonly opts: RunnerOptions) {}

  #config(
    list: NetworkConfList,
    plugin: PluginConf,
    att: Attachment,
    prevResult: unknown,
  ): Record<string, unknown> {
    const conf: Record<string, unknown> = { ...plugin, cniVersion: list.cniVersion, name: list.name };
    delete conf.runtimeConfig;
    if (prevResult !== undefined) conf.prevResult = prevResult;
    const caps = plugin.capabilities;
    if (caps && typeof caps === "object") {
      const runtimeConfig: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(att.capabilityArgs ?? {}))
        if ((caps as Record<string, unknown>)[k] === true && v !== undefined) runtimeConfig[k] = v;
      if (Object.keys(runtimeConfig).length) conf.runtimeConfig = runtimeConfig;
    }
    return conf;
  }

  #call(
    command: "ADD" | "DEL" | "CHECK",
    list: NetworkConfList,
    plugin: PluginConf,
    att: Attachment,
    prev: unknown,
  ) {
    return execPlugin({
      command,
      type: plugin.type,
      network: list.name,
      binDirs: this.opts.binDirs,
      containerId: att.containerId,
      netns: att.netns,
      ifname: att.ifname,
      ...(att.args ? { args: att.args } : {}),
      config: this.#config(list, plugin, att, prev),
      ...(this.opts.timeoutMs ? { timeoutMs: this.opts.timeoutMs } : {}),
    });
  }

  /** ADD: each plugin in order; a failure leaves what earlier plugins did (the caller runs DEL). */
  /**
   * ADD of the whole list. `onPlugin` hears of each plugin before it runs; `onResult` gets each
   * plugin's result as soon as it printed it, so a caller can record it before the next plugin
   * changes anything (what DEL needs after a crash mid-list: see NetworkManager).
   */
  async add(
    list: NetworkConfList,
    att: Attachment,
    onPlugin?: (index: number) => void,
    onResult?: (index: number, raw: unknown) => void,
  ): Promise<AddOutcome> {
    let prev: unknown;
    for (const [i, plugin] of list.plugins.entries()) {
      onPlugin?.(i);
      const out = await this.#call("ADD", list, plugin, att, prev);
      if (out === undefined)
        throw new TtrpcError(
          Code.Unknown,
          `network ${JSON.stringify(list.name)}: CNI ADD ${plugin.type} printed no result`,
        );
      // Checked at every step, so a malformed result names the plugin that printed it.
      parseResult(out, list.cniVersion);
      prev = out;
      onResult?.(i, out);
    }
    return { raw: prev, result: parseResult(prev, list.cniVersion) };
  }

  /**
   * DEL: every plugin in reverse order, even after one fails (a failing firewall DEL must not
   * keep host-local from releasing the address); the first error is thrown at the end.
   * prevResult is given only to 0.4.0+ lists, as the spec introduced it there.
   */
  async del(
    list: NetworkConfList,
    att: Attachment,
    prevResult?: unknown,
    /** Errors this says may be ignored (a plugin whose ADD never ran) are not thrown. */
    ignore?: (index: number, err: unknown) => boolean,
  ): Promise<void> {
    const prev =
      prevResult !== undefined && versionAtLeast(list.cniVersion, "0.4.0") ? prevResult : undefined;
    let first: unknown;
    for (let i = list.plugins.length - 1; i >= 0; i--) {
      try {
        await this.#call("DEL", list, list.plugins[i] as PluginConf, att, prev);
      } catch (err) {
        if (!ignore?.(i, err)) first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }

  /** CHECK: in order with the ADD's result; a no-op for lists before 0.4.0 or with disableCheck. */
  async check(list: NetworkConfList, att: Attachment, prevResult: unknown): Promise<boolean> {
    if (!versionAtLeast(list.cniVersion, "0.4.0") || list.disableCheck) return false;
    for (const plugin of list.plugins) await this.#call("CHECK", list, plugin, att, prevResult);
    return true;
  }

  /**
   * STATUS (1.1.0): whether every plugin of the list is ready for ADD; a plugin that is not
   * answers an error (code 50/51), thrown with its message. Lists before 1.1.0 have no STATUS:
   * false, nothing run.
   */
  async status(list: NetworkConfList): Promise<boolean> {
    if (!versionAtLeast(list.cniVersion, "1.1.0")) return false;
    for (const plugin of list.plugins)
      await execPlugin({
        command: "STATUS",
        type: plugin.type,
        network: list.name,
        binDirs: this.opts.binDirs,
        config: { ...plugin, cniVersion: list.cniVersion, name: list.name },
        ...(this.opts.timeoutMs ? { timeoutMs: this.opts.timeoutMs } : {}),
      });
    return true;
  }

  /**
   * GC (1.1.0): every plugin may release what belongs to no attachment in `valid` (leases and
   * rules left by someone else's crash). Lists before 1.1.0: false, nothing run.
   */
  async gc(
    list: NetworkConfList,
    valid: ReadonlyArray<{ containerID: string; ifname: string }>,
  ): Promise<boolean> {
    if (!versionAtLeast(list.cniVersion, "1.1.0")) return false;
    let first: unknown;
    for (const plugin of list.plugins) {
      try {
        await execPlugin({
          command: "GC",
          type: plugin.type,
          network: list.name,
          binDirs: this.opts.binDirs,
          config: {
            ...plugin,
            cniVersion: list.cniVersion,
            name: list.name,
            "cni.dev/valid-attachments": valid,
          },
          ...(this.opts.timeoutMs ? { timeoutMs: this.opts.timeoutMs } : {}),
        });
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
    return true;
  }

  /** VERSION: the versions a plugin speaks. */
  async version(
    type: string,
    cniVersion = "1.0.0",
  ): Promise<{ cniVersion: string; supportedVersions: string[] }> {
    const out = (await execPlugin({
      command: "VERSION",
      type,
      network: "",
      binDirs: this.opts.binDirs,
      config: { cniVersion },
      ...(this.opts.timeoutMs ? { timeoutMs: this.opts.timeoutMs } : {}),
    })) as { cniVersion?: unknown; supportedVersions?: unknown } | undefined;
    const versions = Array.isArray(out?.supportedVersions)
      ? out.supportedVersions.filter((v): v is string => typeof v === "string")
      : [];
    return {
      cniVersion: typeof out?.cniVersion === "string" ? out.cniVersion : "",
      supportedVersions: versions,
    };
  }
}
