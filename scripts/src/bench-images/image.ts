// The bench's image: built with umoci from busybox-static plus LAYERS layers of random
// (incompressible: gzip leaves them their size) files, about TOTAL_MB in all, pushed by skopeo
// into a docker-registry (distribution 2.8) on loopback that lives until the bench ends (and
// dies with it: setpriv --pdeathsig, see @tsrunc/images' test-registry).

import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { pushTag, startRegistry } from "@tsrunc/images/distribution/test-registry";
import { execa } from "execa";
import type { TestLike } from "../../../test/helpers/containerd.js";
import { makeBusyboxRootfs } from "../../../test/helpers/rootfs.js";

const run = async (cmd: string, args: string[]) => {
  const r = await execa(cmd, args, { reject: false, stdin: "ignore" });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${String(r.stderr).trim()}`);
};

export interface BenchImage {
  ref: string;
  layers: number;
  bytes: number;
}

/** Builds the image under `dir` and serves it from a registry stopped by `t`'s teardown. */
export async function buildAndServe(
  t: TestLike,
  dir: string,
  o: { layers: number; totalMb: number; note: (m: string) => void },
): Promise<BenchImage> {
  const layout = join(dir, "oci");
  const img = `${layout}:big`;
  const bundle = join(dir, "bundle");
  await run("umoci", ["init", "--layout", layout]);
  await run("umoci", ["new", "--image", img]);
  await run("umoci", ["unpack", "--image", img, bundle]);
  const rootfs = join(bundle, "rootfs");
  await rm(rootfs, { recursive: true, force: true });
  makeBusyboxRootfs(rootfs);
  await run("umoci", ["repack", "--refresh-bundle", "--image", img, bundle]);
  const perLayer = Math.ceil((o.totalMb * 1024 * 1024) / o.layers);
  const filesPerLayer = 8;
  let bytes = 0;
  for (let l = 0; l < o.layers; l++) {
    o.note(`building layer ${l + 2}/${o.layers + 1} (${(perLayer / 1048576).toFixed(0)} MB of random files)`);
    const d = join(rootfs, "data", `layer${l}`);
    mkdirSync(d, { recursive: true });
    for (let f = 0; f < filesPerLayer; f++) {
      const size = Math.floor(perLayer / filesPerLayer);
      writeFileSync(join(d, `f${f}`), randomBytes(size));
      bytes += size;
    }
    await run("umoci", ["repack", "--refresh-bundle", "--image", img, bundle]);
  }
  await rm(bundle, { recursive: true, force: true });
  const regdata = join(dir, "registry");
  mkdirSync(regdata);
  // startRegistry wants a tap Test; it only calls teardown().
  const reg = await startRegistry(t as never, { rootdir: regdata });
  const ref = `${reg.host}/bench/big:1`;
  o.note(`pushing ${ref} with skopeo`);
  await pushTag(layout, "big", ref);
  await rm(layout, { recursive: true, force: true });
  return { ref, layers: o.layers + 1, bytes };
}
