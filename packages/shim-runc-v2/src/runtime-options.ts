// The runtime options containerd hands a shim (Task.Create's `options`, and `start`'s stdin).
// For runtime types io.containerd.runc.* the CRI plugin sends runc's own Options
// (containerd.runc.v1.Options). For any other runtime type — ours under Kubernetes — it sends its
// generic runtimeoptions.v1.Options instead: {1 type_url, 2 config_path, 3 config_body (1.7+)},
// built from the runtime's `options` table in config.toml. We read that table's runc keys
// (BinaryName, Root, SystemdCgroup, …, the names of runc's Options in containerd's TOML) from
// the file config_path names, else from config_body; an empty message means the defaults.
import { readFileSync } from "node:fs";
import { isAnyOf, runcoptions, unpackAnyAs } from "@tsrunc/protocol/shim";
import { Code, TtrpcError } from "@tsrunc/ttrpc";

type Any = { typeUrl: string; value: Uint8Array };

/** The CRI plugin's generic options type (containerd pkg/runtimeoptions/v1). */
export const CRI_RUNTIME_OPTIONS_TYPE = "runtimeoptions.v1.Options";

export interface CriRuntimeOptions {
  typeUrl: string;
  configPath: string;
  configBody: Uint8Array;
}

const invalid = (msg: string) => new TtrpcError(Code.InvalidArgument, msg);

/** Decodes runtimeoptions.v1.Options (three fields; unknown ones are skipped). */
export function decodeCriRuntimeOptions(b: Uint8Array): CriRuntimeOptions {
  const out: CriRuntimeOptions = { typeUrl: "", configPath: "", configBody: new Uint8Array() };
  let at = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (at >= b.length) throw invalid("runtime options: truncated varint");
      const x = b[at++] ?? 0;
      v += (x & 0x7f) * mul;
      if (x < 0x80) return v;
      mul *= 128;
    }
    throw invalid("runtime options: bad varint");
  };
  while (at < b.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) varint();
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const len = varint();
      if (at + len > b.length) throw invalid("runtime options: truncated field");
      const bytes = b.subarray(at, at + len);
      at += len;
      if (field === 1) out.typeUrl = Buffer.from(bytes).toString("utf8");
      else if (field === 2) out.configPath = Buffer.from(bytes).toString("utf8");
      else if (field === 3) out.configBody = bytes;
    } else throw invalid(`runtime options: wire type ${wire}`);
    if (at > b.length) throw invalid("runtime options: truncated field");
  }
  return out;
}

// containerd's TOML names of runc's Options, and their kinds.
const KEYS = {
  NoPivotRoot: ["noPivotRoot", "bool"],
  NoNewKeyring: ["noNewKeyring", "bool"],
  ShimCgroup: ["shimCgroup", "string"],
  IoUid: ["ioUid", "uint"],
  IoGid: ["ioGid", "uint"],
  BinaryName: ["binaryName", "string"],
  Root: ["root", "string"],
  CriuPath: ["criuPath", "string"],
  SystemdCgroup: ["systemdCgroup", "bool"],
  CriuImagePath: ["criuImagePath", "string"],
  CriuWorkPath: ["criuWorkPath", "string"],
} as const;

/**
 * runc's Options from the flat TOML of a runtime's options table: `Key = "string"`, `'literal'`,
 * `true`/`false` or an integer, one a line, `#` comments. Keys that are not runc's (TypeUrl,
 * ConfigPath, another shim's) are ignored; a runc key of the wrong kind, a table or anything else
 * unparsable is InvalidArgument naming the line.
 */
export function runcOptionsFromToml(text: string, where: string): runcoptions.Options {
  const init: Record<string, string | number | boolean> = {};
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? "").trim();
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([A-Za-z0-9_-]+|"[^"]*")\s*=\s*(.*?)\s*(?:#[^"']*)?$/.exec(line);
    if (!m) throw invalid(`${where}:${i + 1}: not a key = value line`);
    const key = (m[1] ?? "").replace(/^"|"$/g, "");
    const raw = m[2] ?? "";
    let value: string | number | boolean;
    if (/^"(?:[^"\\]|\\.)*"$/.test(raw)) value = JSON.parse(raw) as string;
    else if (/^'[^']*'$/.test(raw)) value = raw.slice(1, -1);
    else if (raw === "true" || raw === "false") value = raw === "true";
    else if (/^[+-]?[0-9][0-9_]*$/.test(raw)) value = Number(raw.replaceAll("_", ""));
    else throw invalid(`${where}:${i + 1}: unsupported value ${raw}`);
    const spec = (KEYS as Record<string, readonly [string, string]>)[key];
    if (!spec) continue;
    const [name, kind] = spec;
    const ok =
      kind === "bool"
        ? typeof value === "boolean"
        : kind === "string"
          ? typeof value === "string"
          : typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 0xffffffff;
    if (!ok) throw invalid(`${where}:${i + 1}: ${key} must be a ${kind}`);
    init[name] = value;
  }
  return runcoptions.Options.create(init as Partial<runcoptions.Options>);
}

function isCriOptions(any: Any): boolean {
  return any.typeUrl === CRI_RUNTIME_OPTIONS_TYPE || any.typeUrl.endsWith(`/${CRI_RUNTIME_OPTIONS_TYPE}`);
}

/**
 * The runc options an Any carries: runc's own, or the CRI plugin's generic ones (read from their
 * config file or body). Undefined for no options. Anything else is InvalidArgument.
 */
export function runcOptionsFromAny(any: Any | undefined): runcoptions.Options | undefined {
  if (!any || (!any.typeUrl && any.value.length === 0)) return undefined;
  if (isAnyOf(any, runcoptions.Options)) {
    try {
      return unpackAnyAs(any, runcoptions.Options);
    } catch (err) {
      throw invalid(`bad runtime options: ${(err as Error).message}`);
    }
  }
  if (isCriOptions(any)) {
    const cri = decodeCriRuntimeOptions(any.value);
    if (cri.configPath) {
      if (!cri.configPath.startsWith("/") || cri.configPath.includes("\0"))
        throw invalid(`runtime options: ConfigPath must be absolute, got ${JSON.stringify(cri.configPath)}`);
      let text: string;
      try {
        text = readFileSync(cri.configPath, "utf8");
      } catch (err) {
        throw invalid(`runtime options: cannot read ConfigPath: ${(err as Error).message}`);
      }
      return runcOptionsFromToml(text, cri.configPath);
    }
    if (cri.configBody.length)
      return runcOptionsFromToml(Buffer.from(cri.configBody).toString("utf8"), "ConfigBody");
    return undefined;
  }
  throw invalid(`unsupported runtime options type ${JSON.stringify(any.typeUrl)}`);
}
