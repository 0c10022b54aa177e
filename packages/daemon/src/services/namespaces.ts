// containerd.services.namespaces.v1.Namespaces. containerd makes a namespace on first use and
// keeps it until it is deleted; so do we: a namespace exists when any record of tsruncd is in it
// (a container, an image), when a container or lease was once created in it (touch), or when a
// client created it. Labels (e.g. containerd.io/defaults/runtime, which containerd's client
// reads when given a default namespace) are kept in <root>/namespaces.json with the created
// names, written atomically; the records themselves stay where they are.
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { namespacesapi } from "@tsrunc/protocol/daemon";
import { checkIdentifier } from "@tsrunc/shim-contract/check-identifier";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { checkLabelSizes } from "../label-rules.js";
import { parseFilter } from "../store/filters.js";

/** What holds a namespace's records: the namespaces in use, and what of one is left. */
export interface NamespaceRecords {
  /** Every namespace with at least one record. */
  inUse(): Iterable<string>;
  /** What keeps `namespace` from being deleted ("containers", "images"), empty when nothing. */
  contents(namespace: string): string[];
}

type Labels = Record<string, string>;

const maxLabels = 1024;

function checkLabels(labels: Labels): Labels {
  const entries = Object.entries(labels);
  if (entries.length > maxLabels) throw new TtrpcError(Code.InvalidArgument, `more than ${maxLabels} labels`);
  return checkLabelSizes(labels, 80);
}

function nameOf(name: string | undefined): string {
  if (!name) throw new TtrpcError(Code.InvalidArgument, "namespace name must not be empty");
  return checkIdentifier(name, "namespace");
}

export class NamespacesApi {
  readonly #file: string;
  /** Created namespaces and labelled ones: name → labels. */
  readonly #known = new Map<string, Labels>();

  constructor(
    root: string,
    private readonly records: NamespaceRecords,
  ) {
    this.#file = join(root, "namespaces.json");
    try {
      const saved = JSON.parse(readFileSync(this.#file, "utf8")) as Record<string, Labels>;
      for (const [name, labels] of Object.entries(saved)) this.#known.set(name, { ...labels });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
  }

  #save(): void {
    const tmp = `${this.#file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(Object.fromEntries(this.#known)), { mode: 0o600 });
    renameSync(tmp, this.#file);
  }

  #exists(name: string): boolean {
    if (this.#known.has(name)) return true;
    for (const n of this.records.inUse()) if (n === name) return true;
    return false;
  }

  #namespace(name: string): namespacesapi.Namespace {
    return { name, labels: { ...(this.#known.get(name) ?? {}) } };
  }

  /** A namespace something was just made in: it exists from now on, until deleted. */
  touch(name: string): void {
    if (this.#known.has(name)) return;
    this.#known.set(name, {});
    try {
      this.#save();
    } catch {
      // Listing it is a convenience; the call that made something there succeeded.
      this.#known.delete(name);
    }
  }

  get(req: namespacesapi.GetNamespaceRequest): namespacesapi.GetNamespaceResponse {
    const name = nameOf(req.name);
    if (!this.#exists(name)) throw new TtrpcError(Code.NotFound, `namespace ${name}: not found`);
    return { namespace: this.#namespace(name) };
  }

  list(req: namespacesapi.ListNamespacesRequest): namespacesapi.ListNamespacesResponse {
    const filter = parseFilter(req.filter);
    const names = new Set<string>([...this.#known.keys(), ...this.records.inUse()]);
    const namespaces = [...names]
      .sort()
      .map((n) => this.#namespace(n))
      .filter((ns) =>
        filter((path) => {
          if (path[0] === "name" && path.length === 1) return ns.name;
          if (path[0] === "labels" && path.length === 2) return ns.labels[path[1] as string] || undefined;
          return undefined;
        }),
      );
    return { namespaces };
  }

  create(req: namespacesapi.CreateNamespaceRequest): namespacesapi.CreateNamespaceResponse {
    const name = nameOf(req.namespace?.name);
    const labels = checkLabels({ ...(req.namespace?.labels ?? {}) });
    if (this.#exists(name)) throw new TtrpcError(Code.AlreadyExists, `namespace ${name}: already exists`);
    this.#known.set(name, labels);
    this.#save();
    return { namespace: this.#namespace(name) };
  }

  update(req: namespacesapi.UpdateNamespaceRequest): namespacesapi.UpdateNamespaceResponse {
    const name = nameOf(req.namespace?.name);
    if (!this.#exists(name)) throw new TtrpcError(Code.NotFound, `namespace ${name}: not found`);
    const given = req.namespace?.labels ?? {};
    const labels = { ...(this.#known.get(name) ?? {}) };
    const paths = req.updateMask?.paths ?? [];
    if (paths.length === 0) {
      for (const k of Object.keys(labels)) delete labels[k];
      Object.assign(labels, given);
    }
    for (const p of paths) {
      if (p === "labels") {
        for (const k of Object.keys(labels)) delete labels[k];
        Object.assign(labels, given);
      } else if (p.startsWith("labels.")) {
        const key = p.slice("labels.".length);
        const v = Object.hasOwn(given, key) ? given[key] : undefined;
        if (v) labels[key] = v;
        else delete labels[key];
      } else {
        throw new TtrpcError(
          Code.InvalidArgument,
          `cannot update ${JSON.stringify(p.slice(0, 80))} field on namespace ${name}`,
        );
      }
    }
    for (const [k, v] of Object.entries(labels)) if (v === "") delete labels[k];
    this.#known.set(name, checkLabels(labels));
    this.#save();
    return { namespace: this.#namespace(name) };
  }

  delete(req: namespacesapi.DeleteNamespaceRequest): void {
    const name = nameOf(req.name);
    if (!this.#exists(name)) throw new TtrpcError(Code.NotFound, `namespace ${name}: not found`);
    const left = this.records.contents(name);
    if (left.length)
      throw new TtrpcError(
        Code.FailedPrecondition,
        `namespace ${name} must be empty, but it still has ${left.join(", ")}`,
      );
    this.#known.delete(name);
    this.#save();
  }
}
