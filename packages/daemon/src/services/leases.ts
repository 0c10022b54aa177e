// containerd.services.leases.v1.Leases on the daemon's GC leases (images/leases.ts). A client's
// lease is one of those in-memory leases: while it lives the GC keeps what it names (blobs by
// digest through AddResource "content", snapshot keys through "snapshots/overlayfs") and, as for
// every live lease, whatever appeared after it began — so content and snapshots a client makes
// while it holds a lease (ctr wraps `run`, `pull` and `import` in one, sent as the
// `containerd-lease` header) are kept until it lets go, as in containerd. Deleting a lease lets
// the GC collect (before answering with `sync`). A lease with `containerd.io/gc.expire`
// (RFC 3339; ctr sets 24 h) is dropped when it passes. Leases are namespaced and, unlike
// containerd's, do not outlive the daemon: after a restart what they held is kept only if
// something else refers to it (the boot GC runs before serving).
import { randomBytes } from "node:crypto";
import type { leasesapi } from "@tsrunc/protocol/daemon";
import { timestampFromDate } from "@tsrunc/protocol/shim";
import { Code, type IncomingMetadata, TtrpcError } from "@tsrunc/ttrpc";
import type { Lease, LeaseManager } from "../images/leases.js";
import { parseFilters } from "../store/filters.js";
import { maxLabelSize } from "../store/index.js";
import type { CallScope } from "./tasks.js";

export const leaseMetadataKey = "containerd-lease";
export const expireLabel = "containerd.io/gc.expire";

/** A call's scope with the lease it runs under (the `containerd-lease` header), if any. */
export interface LeasedScope extends CallScope {
  lease?: string;
}

/** The lease id a call names in its metadata (undefined when none). */
export function leaseIdOf(metadata: IncomingMetadata | undefined): string | undefined {
  const id = metadata?.[leaseMetadataKey]?.[0];
  return id ? checkLeaseId(id) : undefined;
}

const maxLeaseIdBytes = 1024;

/**
 * Lease ids are only keys here, never paths, and containerd takes any non-empty one (its own
 * client's random ids, `<ns>-<base64url>`, may break the identifier rule): at most 1 KiB, no NUL.
 */
export function checkLeaseId(id: string): string {
  if (id === "" || Buffer.byteLength(id) > maxLeaseIdBytes || id.includes("\0"))
    throw new TtrpcError(Code.InvalidArgument, "lease id must be 1 to 1024 bytes, without NUL");
  return id;
}

/** containerd's resource types a lease can hold (AddResource). */
const resourceTypeRe = /^(content|ingests|snapshots\/[A-Za-z0-9_.-]{1,64})$/;
const maxTimerMs = 2 ** 31 - 1;
const maxLabels = 1024;
const maxResources = 100_000;

interface ClientLease {
  id: string;
  namespace: string;
  createdAt: Date;
  labels: Record<string, string>;
  held: Lease;
  /** "type\u0000id" */
  resources: Set<string>;
  timer: NodeJS.Timeout | undefined;
}

export interface LeasesApiOptions {
  leases: LeaseManager;
  /** Runs the GC (after a Delete); resolves when it finished. */
  collect: () => Promise<unknown>;
}

export class LeasesApi {
  /** namespace → id → lease */
  readonly #leases = new Map<string, Map<string, ClientLease>>();

  constructor(private readonly opts: LeasesApiOptions) {}

  #in(namespace: string): Map<string, ClientLease> {
    let m = this.#leases.get(namespace);
    if (!m) {
      m = new Map();
      this.#leases.set(namespace, m);
    }
    return m;
  }

  #find(s: CallScope, id: string): ClientLease {
    const l = this.#leases.get(s.namespace)?.get(checkLeaseId(id));
    if (!l) throw new TtrpcError(Code.NotFound, `lease ${JSON.stringify(id.slice(0, 80))}: not found`);
    return l;
  }

  /** The GC lease of a client's lease (undefined when none has that id): what services that
   * make content or snapshots under a `containerd-lease` add what they made to. */
  lookup(namespace: string, id: string): Lease | undefined {
    return this.#leases.get(namespace)?.get(id)?.held;
  }

  #drop(l: ClientLease): void {
    if (l.timer) clearTimeout(l.timer);
    l.held.release();
    const m = this.#leases.get(l.namespace);
    m?.delete(l.id);
    if (m?.size === 0) this.#leases.delete(l.namespace);
  }

  #schedule(l: ClientLease): void {
    const at = l.labels[expireLabel];
    if (at === undefined) return;
    const when = Date.parse(at);
    if (Number.isNaN(when))
      throw new TtrpcError(
        Code.InvalidArgument,
        `invalid ${expireLabel} label: ${JSON.stringify(at.slice(0, 80))}`,
      );
    const fire = () => {
      if (Date.now() >= when) {
        this.#drop(l);
        void this.opts.collect().catch(() => {});
      } else l.timer = setTimeout(fire, Math.min(when - Date.now(), maxTimerMs)).unref();
    };
    l.timer = setTimeout(fire, Math.max(0, Math.min(when - Date.now(), maxTimerMs))).unref();
  }

  #toApi(l: ClientLease): leasesapi.Lease {
    return { id: l.id, createdAt: timestampFromDate(l.createdAt), labels: { ...l.labels } };
  }

  create(s: CallScope, req: leasesapi.CreateRequest): leasesapi.CreateResponse {
    const id = req.id ? checkLeaseId(req.id) : randomBytes(12).toString("base64url").replace(/[-_]/g, "x");
    const labels = { ...req.labels };
    const entries = Object.entries(labels);
    if (entries.length > maxLabels)
      throw new TtrpcError(Code.InvalidArgument, `more than ${maxLabels} labels`);
    for (const [k, v] of entries) {
      const size = Buffer.byteLength(k) + Buffer.byteLength(v);
      if (k === "" || size > maxLabelSize)
        throw new TtrpcError(Code.InvalidArgument, `invalid label ${JSON.stringify(k.slice(0, 80))}`);
    }
    const m = this.#in(s.namespace);
    if (m.has(id)) throw new TtrpcError(Code.AlreadyExists, `lease ${JSON.stringify(id)}: already exists`);
    const l: ClientLease = {
      id,
      namespace: s.namespace,
      createdAt: new Date(),
      labels,
      held: this.opts.leases.acquire(s.namespace),
      resources: new Set(),
      timer: undefined,
    };
    try {
      this.#schedule(l);
    } catch (err) {
      l.held.release();
      if (m.size === 0) this.#leases.delete(s.namespace);
      throw err;
    }
    m.set(id, l);
    return { lease: this.#toApi(l) };
  }

  async delete(s: CallScope, req: leasesapi.DeleteRequest): Promise<void> {
    this.#drop(this.#find(s, req.id));
    const gc = this.opts.collect();
    if (req.sync) await gc;
    else void gc.catch(() => {});
  }

  list(s: CallScope, req: leasesapi.ListRequest): leasesapi.ListResponse {
    const filter = parseFilters(req.filters);
    const leases = [...(this.#leases.get(s.namespace)?.values() ?? [])]
      .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.id.localeCompare(b.id))
      .filter((l) =>
        filter((path) => {
          if (path[0] === "id" && path.length === 1) return l.id;
          if (path[0] === "labels" && path.length === 2) return l.labels[path[1] as string] || undefined;
          return undefined;
        }),
      );
    return { leases: leases.map((l) => this.#toApi(l)) };
  }

  addResource(s: CallScope, req: leasesapi.AddResourceRequest): void {
    const l = this.#find(s, req.id);
    const { type, id } = checkResource(req.resource);
    if (l.resources.size >= maxResources && !l.resources.has(`${type}\u0000${id}`))
      throw new TtrpcError(Code.ResourceExhausted, `lease ${l.id} holds ${maxResources} resources already`);
    l.resources.add(`${type}\u0000${id}`);
    if (type === "content") l.held.addBlobs(id);
    else if (type.startsWith("snapshots/")) l.held.addSnapshots(id);
  }

  deleteResource(s: CallScope, req: leasesapi.DeleteResourceRequest): void {
    const l = this.#find(s, req.id);
    const { type, id } = checkResource(req.resource);
    l.resources.delete(`${type}\u0000${id}`);
    if (type === "content") l.held.blobs.delete(id);
    else if (type.startsWith("snapshots/")) {
      const other = [...l.resources].some((r) => r.startsWith("snapshots/") && r.endsWith(`\u0000${id}`));
      if (!other) l.held.snapshots.delete(id);
    }
  }

  listResources(s: CallScope, req: leasesapi.ListResourcesRequest): leasesapi.ListResourcesResponse {
    const l = this.#find(s, req.id);
    return {
      resources: [...l.resources].map((r) => {
        const [type, id] = r.split("\u0000") as [string, string];
        return { id, type };
      }),
    };
  }

  /** Releases every lease (the daemon stops). */
  close(): void {
    for (const m of [...this.#leases.values()]) for (const l of [...m.values()]) this.#drop(l);
  }
}

function checkResource(r: leasesapi.Resource | undefined): { type: string; id: string } {
  const type = r?.type ?? "";
  const id = r?.id ?? "";
  if (!resourceTypeRe.test(type))
    throw new TtrpcError(
      Code.InvalidArgument,
      `unsupported resource type ${JSON.stringify(type.slice(0, 80))}`,
    );
  if (id === "" || Buffer.byteLength(id) > 4096 || id.includes("\0"))
    throw new TtrpcError(Code.InvalidArgument, "resource id must be 1 to 4096 bytes, without NUL");
  if (type === "content" && !/^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(id))
    throw new TtrpcError(Code.InvalidArgument, `invalid digest ${JSON.stringify(id.slice(0, 80))}`);
  return { type, id };
}
