// containerd.services.containers.v1.Containers, transport-free: records in the metadata store,
// shaped and validated as containerd's are, with /containers/* events published.
import type { containersapi } from "@tsrunc/protocol/daemon";
import { events, packAny, timestampFromDate, timestampNow } from "@tsrunc/protocol/shim";
import { checkIdentifier } from "@tsrunc/shim-contract/check-identifier";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
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
  ) {}

  get(s: CallScope, req: containersapi.GetContainerRequest): containersapi.GetContainerResponse {
    const id = checkIdentifier(req.id, "container id");
    return { container: toContainer(this.store.getContainer(s.namespace, id)) };
  }

  list(s: CallScope, req: containersapi.ListContainersRequest): containersapi.ListContainersResponse {
    return { containers: this.store.listContainers(s.namespace, req.filters).map(toContainer) };
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
      extensions: c.extensions ?? {},
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
        ...(c.extensions ? { extensions: c.extensions } : {}),
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
