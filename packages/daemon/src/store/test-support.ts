// Helpers for this directory's tests (not exported from index.ts).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MetadataStore } from "./metadata-store.js";
import type { NewContainer } from "./records.js";

/** Tap's test object, reduced to what the helpers use. */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A fresh directory under the OS temp dir, removed after the test. */
export function tempDir(t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), "tsrunc-store-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A store in a fresh directory (`<tmp>/meta/meta.db`), closed after the test. */
export function openStore(t: Teardown): MetadataStore {
  const store = MetadataStore.open(join(tempDir(t), "meta", "meta.db"));
  t.teardown(() => store.close());
  return store;
}

export function container(id: string, extra: Partial<NewContainer> = {}): NewContainer {
  return {
    namespace: "default",
    id,
    runtime: { name: "io.containerd.tsrunc.v2" },
    spec: {
      typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec",
      value: new Uint8Array([1, 2, 3]),
    },
    image: "docker.io/library/busybox:latest",
    snapshotter: "overlayfs",
    snapshotKey: id,
    ...extra,
  };
}
