// tsruncd as the connection model sees it: containerd's Containers, Tasks and Events services
// and the shims' ttrpc Events/Forward, each method with its stream kind (Containers.ListStream
// streams and ends, Events.Subscribe streams until the connection or a deadline ends it) and the
// status codes the daemon may answer with. Plus the calls frame-level fuzzing sends it: requests
// that name containers that do not exist (answered promptly, and never reaching a shim),
// undecodable payloads, unknown services and methods.
import { ContainersService, EventsService, TasksService } from "@tsrunc/protocol/daemon";
import { EventsTtrpcService } from "@tsrunc/protocol/shim";
import type { AnyMethod, ServiceDescriptor } from "@tsrunc/ttrpc";
import fc from "fast-check";
import type { MethodProfile, ServerProfile } from "./conn-model.js";
import type { CallSpec } from "./frame-arbs.js";

export const DAEMON_SERVICES: readonly ServiceDescriptor[] = [
  ContainersService,
  TasksService,
  EventsService,
  EventsTtrpcService,
];

/** Service name → wire method name → descriptor. */
export const daemonMethods: ReadonlyMap<string, ReadonlyMap<string, AnyMethod>> = new Map(
  DAEMON_SERVICES.map((s) => [
    s.name,
    new Map(Object.values(s.methods as Record<string, AnyMethod>).map((m) => [m.name, m])),
  ]),
);

/** Codes a well-behaved daemon answers with: OK and containerd's errdefs. */
export const DAEMON_PROPER = new Set([0, 3, 5, 6, 9, 12]);

export function daemonProfile(): ServerProfile {
  return {
    maxStreams: 1024,
    lookup(service, method) {
      const m = daemonMethods.get(service)?.get(method);
      if (!m) return undefined;
      const profile: MethodProfile = {
        kind: m.kind,
        // Subscribe streams until the connection (or a deadline) ends it.
        finish: method === "Subscribe" ? "never" : "async",
        codes: (payload) => {
          try {
            m.requestType.decode(payload);
          } catch {
            return new Set([3]);
          }
          return DAEMON_PROPER;
        },
      };
      return profile;
    },
  };
}

/** Ids of containers that never exist in the frame-level campaign. */
const ghostIds = fc.constantFrom("nope", "", "../x", "a/b", "fz-ghost", "x".repeat(77), "é", "a\0b");

const wire: { service: string; method: string; codec: AnyMethod["requestType"] }[] = [];
for (const [service, methods] of daemonMethods)
  for (const [method, m] of methods) wire.push({ service, method, codec: m.requestType });

/**
 * A request naming a ghost: every id field the daemon's requests have, set at once (a codec
 * ignores the fields its message does not have). Containers.Create gets no runtime and so is
 * refused; Tasks.Create names no container that exists.
 */
function ghost(codec: AnyMethod["requestType"], id: string, execId: string): Uint8Array {
  return codec.encode({ id, containerId: id, execId, signal: 9, container: { id }, filters: [] });
}

export const daemonCalls: fc.Arbitrary<CallSpec> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc
      .record({ w: fc.constantFrom(...wire), id: ghostIds, execId: fc.constantFrom("", "e1") })
      .map(({ w, id, execId }) => ({
        service: w.service,
        method: w.method,
        payload: ghost(w.codec, id, execId),
      })),
  },
  {
    weight: 3,
    // Random bytes, for any method but the creates (whose random bodies could make records) and
    // Subscribe (the model cannot tell an undecodable one, answered at once, from one that
    // streams until the connection ends).
    arbitrary: fc
      .record({
        w: fc.constantFrom(...wire.filter((w) => w.method !== "Create" && w.method !== "Subscribe")),
        payload: fc.option(fc.uint8Array({ maxLength: 48 }), { nil: undefined }),
      })
      .map(({ w, payload }) => ({ service: w.service, method: w.method, payload })),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      service: fc.oneof(
        fc.constantFrom(...daemonMethods.keys()),
        fc.constantFrom("containerd.task.v2.Task", "", "containerd.services.tasks.v1"),
        fc.string(),
      ),
      method: fc.oneof(fc.constantFrom("list", "LIST", "", "__proto__", "constructor"), fc.string()),
      payload: fc.option(fc.uint8Array({ maxLength: 16 }), { nil: undefined }),
    }),
  },
);

/** Containers.List in "default": answered OK on any usable connection. */
export const listProbe = {
  call: { service: ContainersService.name, method: "List", payload: new Uint8Array(0) },
  code: 0,
};
