// A plugin's failure as the daemon reports it: the CNI error code and msg the plugin printed
// (spec: {code, msg, details} on stdout, non-zero exit), carried in a TtrpcError whose message
// names the plugin and the network. Codes 1-99 are the spec's; 100+ are the plugin's own.
import { Code, TtrpcError } from "@tsrunc/ttrpc";

export interface CniErrorBody {
  code: number;
  msg: string;
  details?: string;
}

/** The spec's well-known codes; a plugin's own codes (100+) show as numbers. */
const names: Record<number, string> = {
  1: "incompatible CNI version",
  2: "unsupported field in network configuration",
  3: "container unknown or does not exist",
  4: "invalid necessary environment variables",
  5: "I/O failure",
  6: "failed to decode content",
  7: "invalid network config",
  11: "try again later",
  50: "plugin not available",
  51: "plugin not available (limited connectivity)",
};

export class CniPluginError extends TtrpcError {
  constructor(
    readonly plugin: string,
    readonly network: string,
    readonly command: string,
    readonly body: CniErrorBody,
  ) {
    const kind = names[body.code] ?? `plugin error ${body.code}`;
    const detail = body.details ? ` (${body.details})` : "";
    super(
      // A plugin's refusal is about the request or the configuration, not a daemon fault:
      // code 7 (invalid config) and 2 (unsupported field) are the user's to fix.
      body.code === 7 || body.code === 2 || body.code === 1 ? Code.InvalidArgument : Code.Unknown,
      `network ${JSON.stringify(network)}: CNI ${command} ${plugin}: ${body.msg}${detail} [CNI code ${body.code}: ${kind}]`,
    );
  }
}
