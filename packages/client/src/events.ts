// Helpers for the envelopes of the events stream: the payload decoded by its type URL, and a
// JSON shape for printing (what `tsctl events` writes, one object a line).

import { anyRegistry, unpackAny } from "@tsrunc/protocol";
import type { Envelope } from "./client.js";
import { timestampJson, toPlain } from "./json.js";

/**
 * The event inside an envelope (e.g. a TaskExit message), decoded through the protocol's Any
 * registry; undefined when there is none or its type is not known here.
 */
export function decodeEvent(envelope: Pick<Envelope, "event">): unknown {
  const any = envelope.event;
  if (any == null || anyRegistry.lookup(any.typeUrl) === undefined) return undefined;
  try {
    return unpackAny(any);
  } catch {
    return undefined;
  }
}

export interface EnvelopeJson {
  timestamp: string | undefined;
  namespace: string;
  topic: string;
  type: string | undefined;
  event: unknown;
}

/** An envelope as plain JSON: the event decoded when its type is known, base64 otherwise. */
export function envelopeJson(envelope: Envelope): EnvelopeJson {
  const decoded = decodeEvent(envelope);
  return {
    timestamp: timestampJson(envelope.timestamp),
    namespace: envelope.namespace,
    topic: envelope.topic,
    type: envelope.event?.typeUrl,
    event: decoded !== undefined ? toPlain(decoded) : envelope.event ? toPlain(envelope.event.value) : null,
  };
}
