// @tsrunc/protocol/shim — everything the shim speaks, and nothing of the daemon's own API:
// the Task service (containerd.task.v2), the events it forwards (containerd.events inside
// containerd.services.events.ttrpc.v1 envelopes), runc options, cgroup metrics, the shared
// containerd types and the well-known google types, plus the Any and Timestamp helpers.
//
// Each proto package is a namespace: `task.CreateTaskRequest`, `events.TaskExit`,
// `cgroup1.Metrics`, ... Each message is both a TS type and a MessageType value with
// create/encode/decode.

import {
  containerd_services_events_ttrpc_v1,
  containerd_task_v2,
  google_protobuf,
} from "./generated/shim.js";

export * from "./any.js";
export {
  containerd_events as events,
  containerd_runc_v1 as runcoptions,
  containerd_services_events_ttrpc_v1 as ttrpcevents,
  containerd_task_v2 as task,
  containerd_types as types,
  containerd_v1_types as tasktypes,
  google_protobuf as protobuf,
  google_rpc as rpc,
  io_containerd_cgroups_v1 as cgroup1,
  io_containerd_cgroups_v2 as cgroup2,
} from "./generated/shim.js";
export * from "./oci.js";
export { GO_ZERO_TIME, type MessageInit, type MessageType } from "./runtime.js";
export * from "./timestamp.js";
export * from "./topics.js";

/** containerd.task.v2.Task: the shim's ttrpc service. */
export const TaskService = containerd_task_v2.TaskService;
/** containerd.services.events.ttrpc.v1.Events: where a shim forwards its events. */
export const EventsTtrpcService = containerd_services_events_ttrpc_v1.EventsService;

export const Any = google_protobuf.Any;
export type Any = google_protobuf.Any;
export const Empty = google_protobuf.Empty;
export type Empty = google_protobuf.Empty;
export const Timestamp = google_protobuf.Timestamp;
export type Timestamp = google_protobuf.Timestamp;
