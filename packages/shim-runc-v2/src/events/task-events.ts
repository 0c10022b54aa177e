// Builds containerd's task events (containerd.events.*), packs each into an Any with the type
// URL containerd expects, and hands it to the publisher under its topic.
import {
  EventsTtrpcService,
  events,
  packAny,
  type Timestamp,
  Topics,
  timestampFromDate,
} from "@tsrunc/protocol/shim";
import type { Client } from "@tsrunc/ttrpc";
import type { TaskEvents } from "../shim-context.js";
import type { EventPublisher, PublishedEvent } from "./publisher.js";

/** Sends one queued event to containerd as Events/Forward. */
export async function forwardEvent(client: Client, namespace: string, ev: PublishedEvent): Promise<void> {
  await client.service(EventsTtrpcService).forward(
    {
      envelope: { timestamp: timestampFromDate(ev.timestamp), namespace, topic: ev.topic, event: ev.event },
    },
    { timeoutMs: 5000 },
  );
}

const ts = (d: Date): Timestamp => timestampFromDate(d);

export function taskEvents(pub: EventPublisher): TaskEvents {
  return {
    create: (e) =>
      pub.publish(
        Topics.taskCreate,
        packAny(events.TaskCreate, {
          containerId: e.containerId,
          bundle: e.bundle,
          rootfs: e.rootfs.map((m) => ({
            type: m.type,
            source: m.source,
            target: m.target ?? "",
            options: m.options,
          })),
          io: { stdin: e.io.stdin, stdout: e.io.stdout, stderr: e.io.stderr, terminal: e.io.terminal },
          pid: e.pid,
        }),
      ),
    start: (e) => pub.publish(Topics.taskStart, packAny(events.TaskStart, e)),
    exit: (e) => pub.publish(Topics.taskExit, packAny(events.TaskExit, { ...e, exitedAt: ts(e.exitedAt) })),
    delete: (e) =>
      pub.publish(Topics.taskDelete, packAny(events.TaskDelete, { ...e, exitedAt: ts(e.exitedAt) })),
    execAdded: (e) => pub.publish(Topics.taskExecAdded, packAny(events.TaskExecAdded, e)),
    execStarted: (e) => pub.publish(Topics.taskExecStarted, packAny(events.TaskExecStarted, e)),
    paused: (e) => pub.publish(Topics.taskPaused, packAny(events.TaskPaused, e)),
    resumed: (e) => pub.publish(Topics.taskResumed, packAny(events.TaskResumed, e)),
    oom: (e) => pub.publish(Topics.taskOOM, packAny(events.TaskOOM, e)),
    checkpointed: (e) => pub.publish(Topics.taskCheckpointed, packAny(events.TaskCheckpointed, e)),
  };
}
