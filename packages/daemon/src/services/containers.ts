// containerd.services.containers.v1.Containers, transport-free: records in the metadata store,
// shaped and validated as containerd's are, with /containers/* events published.
import type { containersapi } from "@tsrunc/protocol/daemon";
import { events, packAny, timestampFromDate, timestampNow } from "@tsrunc/protocol/shim";
import { checkIdentifier } from "@tsrunc/shim-contract/check-identifier";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { NET_STATUS_EXTENSION, NET_STATUS_TYPE_URL, type NetworkManager } from "../cni/network-manager.js";
import type { EventExchange } from "../events/exchange.js";
import type { ContainerRecord, MetadataStore } from "../store/index.js";
import type { CallScope } from "./tasks.js";

type Container = containersapi.Container;

export function toContainer(r: ContainerRecord): Container {
  return {
    id: r.id,
    labels: { ...r.labels },
    image: r.image,
    runtime: { name: r.runtime.name, ...(r.runtime.options ? { options: r.runtime.options } : {}) },
    ...(r.spec ? { spec: r.spec } : {}),
    snapshotter: r.snapshotter,
    snapshotKey: r.snapshotKey,
    createdAt: timestampFromDate(r.createdAt),
    updatedAt: timestampFromDate(r.updatedAt),
    extensions: { ...r.extensions },
  };
}

export class ContainersApi {
  constructor(
    private readonly store: MetadataStore,
    private readonly exchange: EventExchange,
    private readonly network?: NetworkManager,
  ) {}

  /** The record, with its network state (a JSON Any, filled at read time) as an extension. */
  #shown(namespace: string, r: ContainerRecord): Container {
    const c = toContainer(r);
    const status = this.network?.status(namespace, r.id);
    if (status)
      c.extensions[NET_STATUS_EXTENSION] = {
        typeUrl: NET_STATUS_TYPE_URL,
        value: new TextEncoder().encode(JSON.stringify(status)),
      };
    return c;
  }

  get(s: CallScope, req: containersapi.GetContainerRequest): containersapi.GetContainerResponse {
    const id = checkIdentifier(req.id, "container id");
    return { container: this.#shown(s.namespace, this.store.getContainer(s.namespace, id)) };
  }

  list(s: CallScope, req: containersapi.ListContainersRequest): containersapi.ListContainersResponse {
    return {
      containers: this.store.listContainers(s.namespace, req.filters).map((r) => this.#shown(s.namespace, r)),
    };
  }

  create(s: CallScope, req: containersapi.CreateContainerRequest): containersapi.CreateContainerResponse {
    const c = req.container;
    const id = checkIdentifier(c?.id ?? "", "container id");
    if (!c?.runtime?.name)
      throw new TtrpcError(
        Code.InvalidArgument,
        `container ${JSON.stringify(id)}: must specify a runtime name`,
      );
    if (!c.spec?.typeUrl)
      throw new TtrpcError(Code.InvalidArgument, `container ${JSON.stringify(id)}: must specify a spec`);
    const rec = this.store.createContainer({
      namespace: s.namespace,
      id,
      labels: c.labels ?? {},
      image: c.image ?? "",
      runtime: {
        name: c.runtime.name,
        ...(c.runtime.options?.typeUrl ? { options: c.runtime.options } : {}),
      },
      spec: c.spec,
      snapshotter: c.snapshotter ?? "",
      snapshotKey: c.snapshotKey ?? "",
      extensions: withoutNetStatus(c.extensions ?? {}),
    });
    this.#publish(
      s.namespace,
      "/containers/create",
      packAny(events.ContainerCreate, {
        id,
        image: rec.image,
        runtime: { name: rec.runtime.name, ...(rec.runtime.options ? { options: rec.runtime.options } : {}) },
      }),
    );
    return { container: toContainer(rec) };
  }

  update(s: CallScope, req: containersapi.UpdateContainerRequest): containersapi.UpdateContainerResponse {
    const c = req.container;
    const id = checkIdentifier(c?.id ?? "", "container id");
    const paths = req.updateMask?.paths ?? [];
    const rec = this.store.updateContainer(
      s.namespace,
      id,
      {
        ...(c.labels ? { labels: c.labels } : {}),
        ...(c.image ? { image: c.image } : {}),
        ...(c.spec ? { spec: c.spec } : {}),
        ...(c.snapshotKey ? { snapshotKey: c.snapshotKey } : {}),
        // The network status is ours, filled at read time: a client writing it back is ignored.
        ...(c.extensions ? { extensions: withoutNetStatus(c.extensions) } : {}),
      },
      paths.length ? paths : undefined,
    );
    this.#publish(
      s.namespace,
      "/containers/update",
      packAny(events.ContainerUpdate, {
        id,
        image: rec.image,
        labels: rec.labels,
        snapshotKey: rec.snapshotKey,
      }),
    );
    return { container: toContainer(rec) };
  }

  delete(s: CallScope, req: containersapi.DeleteContainerRequest): void {
    const id = checkIdentifier(req.id, "container id");
    this.store.deleteContainer(s.namespace, id);
    this.#publish(s.namespace, "/containers/delete", packAny(events.ContainerDelete, { id }));
  }

  #publish(namespace: string, topic: string, event: ReturnType<typeof packAny>): void {
    this.exchange.publish({ timestamp: timestampNow(), namespace, topic, event });
  }
}

function withoutNetStatus<T>(ext: Record<string, T>): Record<string, T> {
  if (!(NET_STATUS_EXTENSION in ext)) return ext;
  const { [NET_STATUS_EXTENSION]: _, ...rest } = ext;
  return rest;
}
