// tsruncd as the connection model sees it: containerd's Containers, Tasks and Events services
// and the shims' ttrpc Events/Forward, each method with its stream kind (Containers.ListStream
// streams and ends, Events.Subscribe streams until the connection or a deadline ends it) and the
// status codes the daemon may answer with. Plus the calls frame-level fuzzing sends it: requests
// that name containers that do not exist (answered promptly, and never reaching a shim),
// undecodable payloads, unknown services and methods. The image services (Images, Snapshots,
// ImageTools) have a map and ghost calls of their own (imageMethods, imageCalls): their codes
// include the registry's and the content store's (Unavailable, DataLoss, ...), and their calls
// are kept off the network by lib/pull-guard.ts.
import {
  ContainersService,
  EventsService,
  ImagesService,
  ImageToolsService,
  SnapshotsService,
  TasksService,
} from "@tsrunc/protocol/daemon";
import { EventsTtrpcService } from "@tsrunc/protocol/shim";
import type { AnyMethod, ServiceDescriptor } from "@tsrunc/ttrpc";
import fc from "fast-check";
import type { MethodProfile, ServerProfile } from "./conn-model.js";
import type { CallSpec } from "./frame-arbs.js";
import { DEAD_REGISTRY, sanitizePull } from "./pull-guard.js";

export const DAEMON_SERVICES: readonly ServiceDescriptor[] = [
  ContainersService,
  TasksService,
  EventsService,
  EventsTtrpcService,
];

export const IMAGE_SERVICES: readonly ServiceDescriptor[] = [
  ImagesService,
  SnapshotsService,
  ImageToolsService,
];

const methodMap = (services: readonly ServiceDescriptor[]) =>
  new Map(
    services.map((s) => [
      s.name,
      new Map(Object.values(s.methods as Record<string, AnyMethod>).map((m) => [m.name, m])),
    ]),
  );

/** Service name → wire method name → descriptor. */
export const daemonMethods: ReadonlyMap<string, ReadonlyMap<string, AnyMethod>> = methodMap(DAEMON_SERVICES);
/** The same for the image services. */
export const imageMethods: ReadonlyMap<string, ReadonlyMap<string, AnyMethod>> = methodMap(IMAGE_SERVICES);

/** Codes a well-behaved daemon answers with: OK and containerd's errdefs. */
export const DAEMON_PROPER = new Set([0, 3, 5, 6, 9, 12]);
/**
 * The image services may also answer with what a registry, an archive or the content store says:
 * PermissionDenied, ResourceExhausted, Aborted (content collected meanwhile), Unavailable (the
 * dead registry), DataLoss (a blob that does not match its digest), Unauthenticated. Never
 * Unknown or Internal.
 */
export const IMAGE_PROPER = new Set([...DAEMON_PROPER, 7, 8, 10, 14, 15, 16]);

export function daemonProfile(): ServerProfile {
  return {
    maxStreams: 1024,
    lookup(service, method) {
      const image = imageMethods.get(service)?.get(method);
      const m = image ?? daemonMethods.get(service)?.get(method);
      if (!m) return undefined;
      const proper = image ? IMAGE_PROPER : DAEMON_PROPER;
      const profile: MethodProfile = {
        kind: m.kind,
        // Subscribe streams until the connection (or a deadline) ends it.
        finish: method === "Subscribe" ? "never" : "async",
        codes: (payload) => {
          // A client stream's messages come in data frames (the request's payload, when present,
          // is the first of them): its answer does not depend on the request frame alone.
          if (m.kind === "client") return proper;
          try {
            m.requestType.decode(payload);
          } catch {
            return new Set([3]);
          }
          return proper;
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

/** Image names, snapshot keys and refs that never exist in the frame-level campaign. */
const imageGhosts = fc.constantFrom("nope", "fz.ghost/x:1", "../x", "a/b", "x".repeat(300), "é", "a\0b");

const imageWire: { service: string; method: string; kind: string; codec: AnyMethod["requestType"] }[] = [];
for (const [service, methods] of imageMethods)
  for (const [method, m] of methods) imageWire.push({ service, method, kind: m.kind, codec: m.requestType });

/**
 * A request naming a ghost, for every image method: nothing is created (Images.Create gets no
 * name; Prepare and View a parent that does not exist), Pull goes to the dead registry, Prune
 * collects an empty store, Import's first message (the request's payload) is no archive.
 */
function imageGhost(w: (typeof imageWire)[number], name: string, snapshotter: string): Uint8Array {
  if (w.method === "Pull") return sanitizePull(w.codec.encode({ ref: `${DEAD_REGISTRY}/fz/ghost:1` }));
  if (w.method === "Import") return w.codec.encode({ data: Buffer.from(name) });
  if (w.service === ImagesService.name && w.method === "Create")
    return w.codec.encode({ image: { name: "" } });
  return w.codec.encode({
    name,
    names: [name],
    key: name,
    parent: `fz-ghost-parent-${name.length}`,
    snapshotter,
    image: { name },
    info: { name },
    filters: [],
    all: false,
  });
}

/** Calls to the image services: ghosts, random bodies (safe: see pull-guard), unknown methods. */
export const imageCalls: fc.Arbitrary<CallSpec> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc
      .record({
        w: fc.constantFrom(...imageWire),
        name: imageGhosts,
        snapshotter: fc.constantFrom("overlayfs", "", "btrfs"),
      })
      .map(({ w, name, snapshotter }) => ({
        service: w.service,
        method: w.method,
        payload: imageGhost(w, name, snapshotter),
      })),
  },
  {
    weight: 3,
    // Random bytes for the methods that make nothing (the creates could make records and
    // snapshots; a Pull's are pointed at the dead registry).
    arbitrary: fc
      .record({
        w: fc.constantFrom(
          ...imageWire.filter((w) => !["Create", "Prepare", "View", "Commit"].includes(w.method)),
        ),
        payload: fc.option(fc.uint8Array({ maxLength: 48 }), { nil: undefined }),
      })
      .map(({ w, payload }) => ({
        service: w.service,
        method: w.method,
        payload: payload && w.method === "Pull" ? sanitizePull(payload) : payload,
      })),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      service: fc.constantFrom(...imageMethods.keys()),
      method: fc.oneof(fc.constantFrom("pull", "PULL", "", "__proto__", "constructor", "Pull "), fc.string()),
      payload: fc.option(fc.uint8Array({ maxLength: 16 }), { nil: undefined }),
    }),
  },
);

/** Containers.List in "default": answered OK on any usable connection. */
export const listProbe = {
  call: { service: ContainersService.name, method: "List", payload: new Uint8Array(0) },
  code: 0,
};
