// containerd.services.introspection.v1.Introspection: what tsruncd is made of, in containerd's
// plugin terms, and the server's uuid.
//
// Plugins: containerd's clients look plugins up by type and id — the snapshotter's platforms
// (`type==io.containerd.snapshotter.v1, id==overlayfs`, for an image's platform), the gRPC
// services, the runtime. We list what exists: one io.containerd.grpc.v1 plugin per service the
// API serves (id as containerd's: "containers", "tasks", …), the overlayfs snapshotter, the
// content store, the v2 task runtime and the GC. Filters are containerd's over type and id
// (capabilities and platforms match nothing, as in containerd 1.6).
//
// Server: a random uuid kept in <root>/uuid, so it stays the same across restarts (containerd
// keeps its own under its root too).
import { randomUUID } from "node:crypto";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { introspectionapi } from "@tsrunc/protocol/daemon";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { parseFilters } from "../store/filters.js";

const uuidRe = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A uuid read from `file`, or a new one written there (atomically) when missing or damaged. */
export function persistentUuid(file: string): string {
  try {
    const u = readFileSync(file, "utf8").trim();
    if (uuidRe.test(u)) return u;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const u = randomUUID();
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${u}\n`, { mode: 0o644 });
  renameSync(tmp, file);
  return u;
}

/** containerd's platform names for Node's process.arch. */
function hostPlatform(): { os: string; architecture: string; variant: string } {
  const arch: Record<string, [string, string]> = {
    x64: ["amd64", ""],
    arm64: ["arm64", "v8"],
    arm: ["arm", "v7"],
    ia32: ["386", ""],
    ppc64: ["ppc64le", ""],
    s390x: ["s390x", ""],
    riscv64: ["riscv64", ""],
  };
  const [architecture, variant] = arch[process.arch] ?? [process.arch, ""];
  return { os: "linux", architecture, variant };
}

/** "containerd.services.tasks.v1.Tasks" → "tasks" (containerd's grpc plugin ids). */
function grpcPluginId(service: string): string | undefined {
  if (service === "grpc.health.v1.Health") return "healthcheck";
  const m = /^containerd\.services\.([a-z]+)\.v1\.[A-Za-z]+$/.exec(service);
  return m?.[1];
}

export class IntrospectionApi {
  #uuid: string | undefined;

  /**
   * @param root tsruncd's --root (the uuid file lives there)
   * @param services the wire names of the services the API serves (read at each call)
   * @param images whether the image services (content store, snapshotter) are there
   */
  constructor(
    private readonly root: string,
    private readonly services: () => Iterable<string>,
    private readonly images = true,
  ) {}

  plugins(req: introspectionapi.PluginsRequest): introspectionapi.PluginsResponse {
    const filter = parseFilters(req.filters);
    const platform = hostPlatform();
    const plugins: introspectionapi.Plugin[] = [];
    const add = (type: string, id: string, extra: Partial<introspectionapi.Plugin> = {}) =>
      plugins.push({
        type,
        id,
        requires: [],
        platforms: [],
        exports: {},
        capabilities: [],
        initErr: undefined,
        ...extra,
      } as introspectionapi.Plugin);
    if (this.images) {
      add("io.containerd.content.v1", "content");
      add("io.containerd.snapshotter.v1", "overlayfs", {
        platforms: [platform],
        exports: { root: join(this.root, "snapshots") },
      });
    }
    add("io.containerd.runtime.v2", "task", {
      platforms: [platform],
      requires: ["io.containerd.event.v1"],
    });
    add("io.containerd.event.v1", "exchange");
    add("io.containerd.gc.v1", "scheduler");
    const ids = new Set<string>();
    for (const s of this.services()) {
      const id = grpcPluginId(s);
      if (id && !ids.has(id)) {
        ids.add(id);
        add("io.containerd.grpc.v1", id);
      }
    }
    return {
      plugins: plugins.filter((p) =>
        filter((path) => {
          if (path.length !== 1) return undefined;
          if (path[0] === "type") return p.type || undefined;
          if (path[0] === "id") return p.id || undefined;
          return undefined;
        }),
      ),
    };
  }

  server(): introspectionapi.ServerResponse {
    try {
      this.#uuid ??= persistentUuid(join(this.root, "uuid"));
    } catch (err) {
      throw new TtrpcError(Code.Unavailable, `cannot keep the server uuid: ${(err as Error).message}`);
    }
    return { uuid: this.#uuid };
  }
}
