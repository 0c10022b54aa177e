// Helpers for the tests of the image system, here and in ../services (not used by tsruncd).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { MetadataStore } from "../store/index.js";
import type { Teardown } from "../store/test-support.js";
import { ImageSystem } from "./system.js";

/**
 * An ImageSystem on a fresh `<tmp>/<prefix>…` root with its own metadata database and the copy
 * snapshotter (no mounts needed), closed and removed after the test.
 */
export async function testImageSystem(
  t: Teardown,
  prefix: string,
): Promise<{ root: string; sys: ImageSystem }> {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const metadata = MetadataStore.open(join(root, "meta.db"));
  const sys = await ImageSystem.open({
    root,
    metadata,
    log: pino({ level: "silent" }),
    snapshotterBackend: "copy",
  });
  t.teardown(async () => {
    await sys.close();
    metadata.close();
    rmSync(root, { recursive: true, force: true });
  });
  return { root, sys };
}
