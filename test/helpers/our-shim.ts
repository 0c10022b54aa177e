// A private containerd whose shims find ours: `scripts/install <root>/opt` puts the launcher,
// the bundle with its code cache and the native addon (and no package.json) into
// <root>/opt/bin, which containerd's opt plugin puts first on the PATH it starts shims with.
// The prefix lives in the test's temp root, so the harness's stop() and sweeps remove it, also
// when a test dies.
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import {
  type Containerd,
  type StartContainerdOptions,
  startContainerd,
  type TestLike,
} from "./containerd.js";

export const RUNTIME = "io.containerd.tsrunc.v2";
export const SHIM = "containerd-shim-tsrunc-v2";
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
/**
 * The installed layouts (scripts/install): the launcher (bin/ holds the shim's launcher with its
 * files and symlinks to tsruncd and tsctl, which live in lib/tsrunc), or single files.
 */
export type Layout = "launcher" | "standalone";
/** What tests get unless they ask: the layout that is faster in scripts/bench-shim. */
export const DEFAULT_LAYOUT: Layout = "launcher";
const INSTALLED: Record<Layout, string> = {
  launcher: [SHIM, "tsctl", "tsrunc-shim.cache", "tsrunc-shim.js", "tsrunc_native.node", "tsruncd"].join(" "),
  standalone: [SHIM, "tsctl", "tsruncd"].join(" "),
};

export async function containerdWithOurShim(
  t: TestLike,
  opts: StartContainerdOptions & { layout?: Layout } = {},
): Promise<Containerd> {
  const { layout = DEFAULT_LAYOUT, ...rest } = opts;
  const cd = await startContainerd(t, { ...rest, env: { TSRUNC_DEBUG: "1", ...opts.env } });
  const prefix = path.join(cd.root, "opt");
  const r = await execa(path.join(REPO, "scripts/install"), [`--${layout}`, prefix], { reject: false });
  if (r.exitCode !== 0)
    throw new Error(`scripts/install ${prefix} failed (npm run build first?): ${r.stderr}`);
  const installed = fs.readdirSync(path.join(prefix, "bin")).sort().join(" ");
  if (installed !== INSTALLED[layout]) throw new Error(`unexpected files in ${prefix}/bin: ${installed}`);
  return cd;
}
