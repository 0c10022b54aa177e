// @tsrunc/protocol/daemon — the daemon's own API, shaped like containerd's services:
// containers (containerd.services.containers.v1), tasks (containerd.services.tasks.v1) and
// events (containerd.services.events.v1, with Subscribe as a server stream), and the services
// containerd's gRPC API adds (namespaces, leases, version, introspection). The types these
// share with the shim (Mount, Process, Any, ...) come from "@tsrunc/protocol/shim".

import { anyRegistry } from "./any.js";
import {
  containerd_services_containers_v1,
  containerd_services_content_v1,
  containerd_services_diff_v1,
  containerd_services_events_v1,
  containerd_services_images_v1,
  containerd_services_introspection_v1,
  containerd_services_leases_v1,
  containerd_services_namespaces_v1,
  containerd_services_snapshots_v1,
  containerd_services_tasks_v1,
  containerd_services_version_v1,
  grpc_health_v1,
  tsrunc_services_images_v1,
} from "./generated/daemon.js";

export {
  containerd_services_containers_v1 as containersapi,
  containerd_services_content_v1 as contentapi,
  containerd_services_diff_v1 as diffapi,
  containerd_services_events_v1 as eventsapi,
  containerd_services_images_v1 as imagesapi,
  containerd_services_introspection_v1 as introspectionapi,
  containerd_services_leases_v1 as leasesapi,
  containerd_services_namespaces_v1 as namespacesapi,
  containerd_services_snapshots_v1 as snapshotsapi,
  containerd_services_tasks_v1 as tasksapi,
  containerd_services_version_v1 as versionapi,
  grpc_health_v1 as healthapi,
  tsrunc_services_images_v1 as imagetools,
} from "./generated/daemon.js";

/** containerd.services.containers.v1.Containers */
export const ContainersService = containerd_services_containers_v1.ContainersService;
/** containerd.services.tasks.v1.Tasks */
export const TasksService = containerd_services_tasks_v1.TasksService;
/** containerd.services.events.v1.Events (Subscribe is a server stream of Envelopes). */
export const EventsService = containerd_services_events_v1.EventsService;
/** containerd.services.images.v1.Images: image records (name → target descriptor, labels). */
export const ImagesService = containerd_services_images_v1.ImagesService;
/** containerd.services.snapshots.v1.Snapshots (List is a server stream); snapshotter "overlayfs". */
export const SnapshotsService = containerd_services_snapshots_v1.SnapshotsService;
/** containerd.services.namespaces.v1.Namespaces: names with labels. */
export const NamespacesService = containerd_services_namespaces_v1.NamespacesService;
/** containerd.services.leases.v1.Leases: what a client holds from the garbage collector. */
export const LeasesService = containerd_services_leases_v1.LeasesService;
/** containerd.services.version.v1.Version */
export const VersionService = containerd_services_version_v1.VersionService;
/** containerd.services.introspection.v1.Introspection: Plugins and Server (uuid). */
export const IntrospectionService = containerd_services_introspection_v1.IntrospectionService;
/** containerd.services.content.v1.Content: blobs by digest; Write is a bidirectional stream. */
export const ContentService = containerd_services_content_v1.ContentService;
/** containerd.services.diff.v1.Diff: Apply (a layer into a snapshot's mounts); Diff. */
export const DiffService = containerd_services_diff_v1.DiffService;
/** grpc.health.v1.Health: containerd's healthcheck plugin (Check, Watch). */
export const HealthService = grpc_health_v1.HealthService;
/** tsrunc.services.images.v1.ImageTools: Pull, Import, Export, Config, Prune (our own). */
export const ImageToolsService = tsrunc_services_images_v1.ImageToolsService;

/** containerd's image event topics (the events are imagesapi.ImageCreate/ImageUpdate/ImageDelete). */
export const ImageTopics = {
  imageCreate: "/images/create",
  imageUpdate: "/images/update",
  imageDelete: "/images/delete",
} as const;

// Image events travel in Envelopes as Anys: decodable wherever the daemon's API is loaded.
anyRegistry.register(
  containerd_services_images_v1.ImageCreate,
  containerd_services_images_v1.ImageUpdate,
  containerd_services_images_v1.ImageDelete,
);
