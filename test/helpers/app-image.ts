// An image for the images CLI tests, built once per test file with umoci (as images-ctr.test.ts
// builds its own): busybox-static with every applet, an Entrypoint script that prints $GREETING
// and then runs its arguments, Cmd `cat /etc/greeting`, Env, WorkingDir /srv/work and User app
// (uid 1000 in /etc/passwd, also in group extra 2000 in /etc/group), in two layers, the second
// deleting a directory of the first (a whiteout). Pushed with skopeo to a docker-registry on
// loopback, and copied to an oci-archive and a docker-archive.

import { chownSync, mkdirSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pushTag, startRegistry } from "@tsrunc/images/distribution/test-registry";
import { execa } from "execa";
import type { Test } from "tap";
import { makeBusyboxRootfs } from "./rootfs.js";

export const GREETING_FILE = "hello from the image";

const run = async (cmd: string, args: string[]) => {
  const r = await execa(cmd, args, { reject: false, stdin: "ignore" });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return String(r.stdout);
};

export interface AppImage {
  /** The OCI layout umoci built (tag "app"). */
  layout: string;
  /** "127.0.0.1:PORT/tsrunc/app:1" in the running registry. */
  ref: string;
  registryHost: string;
  ociArchive: string;
  /** Named tsrunc.test/docker:1 inside. */
  dockerArchive: string;
  /** A scratch directory removed with the test. */
  dir: string;
}

/** Builds the image in a temp dir, starts a registry (stopped at `t`'s end) and pushes it. */
export async function appImage(t: Test): Promise<AppImage> {
  const dir = await mkdtemp(join(tmpdir(), "tsrunc-appimg-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const layout = join(dir, "oci");
  const img = `${layout}:app`;
  await run("umoci", ["init", "--layout", layout]);
  await run("umoci", ["new", "--image", img]);
  const b1 = join(dir, "b1");
  await run("umoci", ["unpack", "--image", img, b1]);
  const r = join(b1, "rootfs");
  await rm(r, { recursive: true, force: true });
  makeBusyboxRootfs(r);
  writeFileSync(join(r, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/srv:/bin/sh\n");
  writeFileSync(join(r, "etc/group"), "root:x:0:\napp:x:1000:\nextra:x:2000:app\n");
  writeFileSync(join(r, "etc/greeting"), `${GREETING_FILE}\n`);
  writeFileSync(join(r, "bin/entry"), '#!/bin/sh\necho "entry:$GREETING"\nexec "$@"\n', { mode: 0o755 });
  mkdirSync(join(r, "srv/work"), { recursive: true });
  chownSync(join(r, "srv/work"), 1000, 1000); // the image's user writes there
  mkdirSync(join(r, "gone"));
  writeFileSync(join(r, "gone/file"), "x");
  await run("umoci", ["repack", "--image", img, b1]);
  const b2 = join(dir, "b2");
  await run("umoci", ["unpack", "--image", img, b2]);
  await rm(join(b2, "rootfs/gone"), { recursive: true });
  writeFileSync(join(b2, "rootfs/etc/layer2"), "second layer\n");
  await run("umoci", ["repack", "--image", img, b2]);
  await rm(b1, { recursive: true, force: true });
  await rm(b2, { recursive: true, force: true });
  await run("umoci", [
    "config",
    "--image",
    img,
    "--config.entrypoint",
    "/bin/entry",
    "--config.cmd",
    "cat",
    "--config.cmd",
    "/etc/greeting",
    "--config.env",
    "PATH=/bin:/usr/bin",
    "--config.env",
    "GREETING=image",
    "--config.env",
    "KEEP=1",
    "--config.workingdir",
    "/srv/work",
    "--config.user",
    "app",
  ]);

  const regdata = join(dir, "registry");
  mkdirSync(regdata);
  const reg = await startRegistry(t, { rootdir: regdata });
  const ref = `${reg.host}/tsrunc/app:1`;
  await pushTag(layout, "app", ref);
  const ociArchive = join(dir, "app-oci.tar");
  await run("skopeo", [
    "--insecure-policy",
    "copy",
    "--quiet",
    `oci:${img}`,
    `oci-archive:${ociArchive}:tsrunc.test/oci:1`,
  ]);
  const dockerArchive = join(dir, "app-docker.tar");
  await run("skopeo", [
    "--insecure-policy",
    "copy",
    "--quiet",
    `oci:${img}`,
    `docker-archive:${dockerArchive}:tsrunc.test/docker:1`,
  ]);
  return { layout, ref, registryHost: reg.host, ociArchive, dockerArchive, dir };
}
