// Event topics, as containerd names them (runtime/events.go and the containers store). The
// Envelope's topic and the event type inside its Any must agree.

import { containerd_events as events } from "./generated/shim.js";
import type { MessageType } from "./runtime.js";

export const Topics = {
  taskCreate: "/tasks/create",
  taskStart: "/tasks/start",
  taskOOM: "/tasks/oom",
  taskExit: "/tasks/exit",
  taskDelete: "/tasks/delete",
  taskExecAdded: "/tasks/exec-added",
  taskExecStarted: "/tasks/exec-started",
  taskPaused: "/tasks/paused",
  taskResumed: "/tasks/resumed",
  taskCheckpointed: "/tasks/checkpointed",
  containerCreate: "/containers/create",
  containerUpdate: "/containers/update",
  containerDelete: "/containers/delete",
} as const;

export type Topic = (typeof Topics)[keyof typeof Topics];

const byType = new Map<string, Topic>([
  [events.TaskCreate.typeName, Topics.taskCreate],
  [events.TaskStart.typeName, Topics.taskStart],
  [events.TaskOOM.typeName, Topics.taskOOM],
  [events.TaskExit.typeName, Topics.taskExit],
  [events.TaskDelete.typeName, Topics.taskDelete],
  [events.TaskExecAdded.typeName, Topics.taskExecAdded],
  [events.TaskExecStarted.typeName, Topics.taskExecStarted],
  [events.TaskPaused.typeName, Topics.taskPaused],
  [events.TaskResumed.typeName, Topics.taskResumed],
  [events.TaskCheckpointed.typeName, Topics.taskCheckpointed],
  [events.ContainerCreate.typeName, Topics.containerCreate],
  [events.ContainerUpdate.typeName, Topics.containerUpdate],
  [events.ContainerDelete.typeName, Topics.containerDelete],
]);

/** The topic of an event type (by its type or type URL); undefined for non-event types. */
export function topicOf(type: Pick<MessageType<unknown>, "typeName"> | string): Topic | undefined {
  return byType.get(typeof type === "string" ? type : type.typeName);
}
