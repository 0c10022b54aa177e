// One overlay snapshotter per namespace, each in its own directory and SQLite file under
// <root>/snapshots/<namespace>: a key in one namespace is invisible in another, a namespace's
// snapshots go away with its directory, and the images package's snapshotter (keys are chain ids)
// needs no notion of namespaces. The cost: an image pulled into two namespaces is unpacked twice.

import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { OverlaySnapshotter, type SnapshotterBackend } from "@tsrunc/images";
import { identifierProblem } from "@tsrunc/shim-contract/identifiers";
import { Code, TtrpcError } from "@tsrunc/ttrpc";

/** The one snapshotter name we serve (containerd's default on Linux). */
export const snapshotterName = "overlayfs";

/** "" → "overlayfs"; any other name is NotFound, as containerd answers for an unknown plugin. */
export function checkSnapshotter(name: string | undefined): string {
  if (!name || name === snapshotterName) return snapshotterName;
  throw new TtrpcError(
    Code.NotFound,
    `snapshotter ${JSON.stringify(name)} was not found (this daemon has "overlayfs")`,
  );
}

export class Snapshotters {
  readonly #open = new Map<string, Promise<OverlaySnapshotter>>();
  #closed = false;

  constructor(
    /** <root>/snapshots */
    readonly root: string,
    private readonly backend: "auto" | SnapshotterBackend = "auto",
  ) {}

  /** The namespace's snapshotter, opened (and cleaned of what a crash left) on first use. */
  get(namespace: string): Promise<OverlaySnapshotter> {
    if (this.#closed) return Promise.reject(new TtrpcError(Code.Unavailable, "daemon stopping"));
    const problem = identifierProblem(namespace);
    if (problem) return Promise.reject(new TtrpcError(Code.InvalidArgument, `namespace: ${problem}`));
    let p = this.#open.get(namespace);
    if (!p) {
      p = OverlaySnapshotter.open(join(this.root, namespace), { backend: this.backend });
      p.catch(() => this.#open.delete(namespace));
      this.#open.set(namespace, p);
    }
    return p;
  }

  /** Namespaces that have a snapshotter directory (opened or not). */
  async namespaces(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    return names.filter((n) => identifierProblem(n) === undefined).sort();
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const p of this.#open.values()) {
      try {
        (await p).close();
      } catch {
        // failed to open: nothing to close
      }
    }
    this.#open.clear();
  }
}
