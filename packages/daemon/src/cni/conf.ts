// Network configurations from the conf directory, as libcni reads them: `*.conflist` (a list
// of plugins) and `*.conf`/`*.json` (one plugin, turned into a list of one), in file-name order;
// the first file that declares a name wins. The loaded list is stored with the container, so a
// DEL runs with the configuration its ADD had even if the file changed or went away meanwhile.
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { resultVersions, versionAtLeast } from "./result.js";

export interface PluginConf {
  type: string;
  [key: string]: unknown;
}

export interface NetworkConfList {
  cniVersion: string;
  name: string;
  disableCheck?: boolean;
  plugins: PluginConf[];
  /** The file it came from (for messages). */
  file: string;
}

/** The spec's rule for network names. */
const nameRule = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function checkNetworkName(name: string): string {
  if (!nameRule.test(name) || name.length > 128)
    throw new TtrpcError(Code.InvalidArgument, `invalid network name ${JSON.stringify(name)}`);
  return name;
}

const invalid = (file: string, what: string) =>
  new TtrpcError(Code.InvalidArgument, `CNI configuration ${file}: ${what}`);

function checkPlugin(p: unknown, file: string): PluginConf {
  if (p === null || typeof p !== "object" || Array.isArray(p))
    throw invalid(file, "a plugin is not an object");
  const type = (p as { type?: unknown }).type;
  // The type names a file in the plugin directories: no path separators, nothing hidden.
  if (typeof type !== "string" || !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(type))
    throw invalid(file, `invalid plugin type ${JSON.stringify(type)}`);
  return p as PluginConf;
}

/** Parses one file's text into a list (a .conf becomes a list of one plugin). */
export function parseConf(text: string, file: string): NetworkConfList {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw invalid(file, `not JSON: ${(err as Error).message}`);
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw invalid(file, "not a JSON object");
  const o = raw as Record<string, unknown>;
  if (typeof o.name !== "string") throw invalid(file, "no network name");
  checkNetworkName(o.name);
  // 1.1.0's negotiation: `cniVersions` lists what the file may be read as; the highest we speak wins.
  const offered = Array.isArray(o.cniVersions)
    ? o.cniVersions.filter((v): v is string => (resultVersions as readonly string[]).includes(v as string))
    : [];
  const cniVersion = offered.length
    ? (offered.sort((a, b) => (versionAtLeast(a, b) ? -1 : 1))[0] as string)
    : typeof o.cniVersion === "string"
      ? o.cniVersion
      : "";
  if (!(resultVersions as readonly string[]).includes(cniVersion))
    throw invalid(file, `unsupported cniVersion ${JSON.stringify(o.cniVersion)}`);
  if (file.endsWith(".conflist")) {
    if (!Array.isArray(o.plugins) || o.plugins.length === 0) throw invalid(file, "no plugins");
    return {
      cniVersion,
      name: o.name,
      ...(o.disableCheck === true ? { disableCheck: true } : {}),
      plugins: o.plugins.map((p) => checkPlugin(p, file)),
      file,
    };
  }
  const { cniVersion: _v, cniVersions: _vs, name: _n, ...plugin } = o;
  return { cniVersion, name: o.name, plugins: [checkPlugin(plugin, file)], file };
}

const confFile = /\.(conflist|conf|json)$/;

/**
 * Finds the network `name` in `dir`. A file that does not parse is skipped unless it is the
 * only candidate for the name (its error is then the answer), as a broken neighbour should not
 * take every other network down.
 */
export async function loadNetwork(dir: string, name: string): Promise<NetworkConfList | undefined> {
  checkNetworkName(name);
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => confFile.test(f)).sort();
  let firstError: unknown;
  for (const f of files) {
    const path = join(dir, f);
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch {
      continue;
    }
    try {
      const list = parseConf(text, path);
      if (list.name === name) return list;
    } catch (err) {
      // Only a file that seems to be about this network reports its error.
      if (firstError === undefined && text.includes(JSON.stringify(name))) firstError = err;
    }
  }
  if (firstError !== undefined) throw firstError;
  return undefined;
}

/** Every network of `dir` that parses (first file per name), for GC. */
export async function loadAll(dir: string): Promise<NetworkConfList[]> {
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => confFile.test(f)).sort();
  const out = new Map<string, NetworkConfList>();
  for (const f of files) {
    try {
      const list = parseConf(await readFile(join(dir, f), "utf8"), join(dir, f));
      if (!out.has(list.name)) out.set(list.name, list);
    } catch {}
  }
  return [...out.values()];
}
