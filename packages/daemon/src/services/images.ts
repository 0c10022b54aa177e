// containerd.services.images.v1.Images, transport-free: image records in the metadata store,
// namespaced like containers. Delete removes the record, then garbage-collects (before answering
// with `sync`, in the background otherwise).

import { ImageTopics, imagesapi } from "@tsrunc/protocol/daemon";
import { packAny, timestampFromDate, timestampNow } from "@tsrunc/protocol/shim";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import type { EventExchange } from "../events/exchange.js";
import type { ImageSystem } from "../images/system.js";
import { checkImageName, type ImageRecord, type TargetDescriptor } from "../store/image-store.js";
import type { CallScope } from "./tasks.js";

type Image = imagesapi.Image;

export function toImage(r: ImageRecord): Image {
  return {
    name: r.name,
    labels: { ...r.labels },
    target: {
      mediaType: r.target.mediaType,
      digest: r.target.digest,
      size: r.target.size,
      annotations: { ...r.target.annotations },
    },
    createdAt: timestampFromDate(r.createdAt),
    updatedAt: timestampFromDate(r.updatedAt),
  };
}

function targetOf(t: Image["target"] | undefined): TargetDescriptor {
  return {
    mediaType: t?.mediaType ?? "",
    digest: t?.digest ?? "",
    size: t?.size ?? 0,
    annotations: { ...(t?.annotations ?? {}) },
  };
}

/** Publishes containerd's /images/create, /images/update or /images/delete for a record. */
export function publishImageEvent(
  exchange: EventExchange | undefined,
  namespace: string,
  kind: "create" | "update" | "delete",
  rec: Pick<ImageRecord, "name" | "labels">,
): void {
  if (!exchange) return;
  const event =
    kind === "create"
      ? packAny(imagesapi.ImageCreate, { name: rec.name, labels: rec.labels })
      : kind === "update"
        ? packAny(imagesapi.ImageUpdate, { name: rec.name, labels: rec.labels })
        : packAny(imagesapi.ImageDelete, { name: rec.name });
  const topic =
    kind === "create"
      ? ImageTopics.imageCreate
      : kind === "update"
        ? ImageTopics.imageUpdate
        : ImageTopics.imageDelete;
  exchange.publish({ timestamp: timestampNow(), namespace, topic, event });
}

export class ImagesApi {
  constructor(
    private readonly sys: ImageSystem,
    private readonly exchange?: EventExchange,
  ) {}

  get(s: CallScope, req: imagesapi.GetImageRequest): imagesapi.GetImageResponse {
    return { image: toImage(this.sys.images.get(s.namespace, checkImageName(req.name))) };
  }

  list(s: CallScope, req: imagesapi.ListImagesRequest): imagesapi.ListImagesResponse {
    return { images: this.sys.images.list(s.namespace, req.filters).map(toImage) };
  }

  create(s: CallScope, req: imagesapi.CreateImageRequest): imagesapi.CreateImageResponse {
    const i = req.image;
    const rec = this.sys.images.create({
      namespace: s.namespace,
      name: checkImageName(i?.name),
      labels: i?.labels ?? {},
      target: targetOf(i?.target),
    });
    publishImageEvent(this.exchange, s.namespace, "create", rec);
    return { image: toImage(rec) };
  }

  update(s: CallScope, req: imagesapi.UpdateImageRequest): imagesapi.UpdateImageResponse {
    const i = req.image;
    const name = checkImageName(i?.name);
    const paths = req.updateMask?.paths ?? [];
    const rec = this.sys.images.update(
      s.namespace,
      name,
      { labels: i.labels, ...(i.target?.digest || paths.length ? { target: targetOf(i.target) } : {}) },
      paths,
    );
    publishImageEvent(this.exchange, s.namespace, "update", rec);
    return { image: toImage(rec) };
  }

  async delete(s: CallScope, req: imagesapi.DeleteImageRequest): Promise<void> {
    const name = checkImageName(req.name);
    this.sys.images.delete(s.namespace, name);
    publishImageEvent(this.exchange, s.namespace, "delete", { name, labels: {} });
    if (req.sync) {
      await this.sys.gc.collect().catch((err: unknown) => {
        throw new TtrpcError(
          Code.Unknown,
          `image ${JSON.stringify(name)} deleted, but collecting failed: ${(err as Error).message}`,
        );
      });
    } else this.sys.gc.collectInBackground(`image ${name} deleted`);
  }
}
