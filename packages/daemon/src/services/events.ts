// containerd.services.events.v1.Events, transport-free, plus the shims' ttrpc Forward. Subscribe
// takes containerd's filters over the envelope's `topic` and `namespace`, e.g.
// `topic=="/tasks/exit"` or `namespace==default,topic~="^/tasks/"`.
import type { eventsapi } from "@tsrunc/protocol/daemon";
import { timestampNow } from "@tsrunc/protocol/shim";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import type { Envelope, EventExchange } from "../events/exchange.js";
import { parseFilters } from "../store/filters.js";
import type { CallScope } from "./tasks.js";

const topicRule = /^\/[A-Za-z0-9_./-]{1,254}$/;

export class EventsApi {
  constructor(private readonly exchange: EventExchange) {}

  subscribe(req: eventsapi.SubscribeRequest, signal: AbortSignal): AsyncIterable<Envelope> {
    const filter = parseFilters(req.filters);
    return this.exchange.subscribe(
      (e) =>
        filter((path) => {
          if (path.length !== 1) return undefined;
          if (path[0] === "topic") return e.topic;
          if (path[0] === "namespace") return e.namespace;
          return undefined;
        }),
      signal,
    );
  }

  publish(s: CallScope, req: eventsapi.PublishRequest): void {
    checkTopic(req.topic);
    if (!req.event?.typeUrl) throw new TtrpcError(Code.InvalidArgument, "event must not be empty");
    this.exchange.publish({
      timestamp: timestampNow(),
      namespace: s.namespace,
      topic: req.topic,
      event: req.event,
    });
  }

  /** A shim's (or anyone's) finished envelope, relayed as it came. */
  forward(envelope: Envelope | undefined): void {
    if (!envelope) throw new TtrpcError(Code.InvalidArgument, "envelope must not be empty");
    checkTopic(envelope.topic);
    this.exchange.publish(envelope);
  }
}

function checkTopic(topic: string): void {
  if (!topicRule.test(topic) || topic.includes("//"))
    throw new TtrpcError(Code.InvalidArgument, `invalid topic ${JSON.stringify(topic.slice(0, 80))}`);
}
