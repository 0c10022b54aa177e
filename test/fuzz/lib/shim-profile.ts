// The live shim as the connection model sees it: the Task service, every method unary and
// answering a few turns after its request (never at once: the handlers are async), with the
// status codes a shim may use. Plus the calls frame-level fuzzing sends it: requests naming
// containers that do not exist (so that each is answered promptly), undecodable payloads,
// unknown services and methods.
import { TaskService } from "@tsrunc/protocol";
import type { AnyMethod } from "@tsrunc/ttrpc";
import fc from "fast-check";
import type { MethodProfile, ServerProfile } from "./conn-model.js";
import type { CallSpec } from "./frame-arbs.js";

export const TASK = TaskService.name;

/** Wire method name → descriptor. */
export const taskMethods: ReadonlyMap<string, AnyMethod> = new Map(
  Object.values(TaskService.methods as Record<string, AnyMethod>).map((m) => [m.name, m]),
);

/** Codes a well-behaved shim answers with: OK and containerd's errdefs. */
export const PROPER = new Set([0, 3, 5, 6, 9, 12]);
/** Methods that run runc (or mount), whose failures may be Unknown with runc's own message. */
export const RUNC_BACKED = new Set([
  "Create",
  "Start",
  "Delete",
  "Kill",
  "Pids",
  "Pause",
  "Resume",
  "Exec",
  "Update",
  "Checkpoint",
  "Stats",
]);

export function shimProfile(): ServerProfile {
  return {
    maxStreams: 1024,
    lookup(service, method) {
      if (service !== TASK) return undefined;
      const m = taskMethods.get(method);
      if (!m) return undefined;
      const profile: MethodProfile = {
        kind: "unary",
        finish: "async",
        codes: (payload) => {
          try {
            m.requestType.decode(payload);
          } catch {
            return new Set([3]);
          }
          const codes = new Set(PROPER);
          if (RUNC_BACKED.has(method)) codes.add(2);
          return codes;
        },
      };
      return profile;
    },
  };
}

/** Ids of containers that never exist in the frame-level campaign (no Create is sent there). */
const ghostIds = fc.constantFrom("nope", "", "../x", "a/b", "fz-ghost", "x".repeat(77), "é", "a\0b");

const wireNames = [...taskMethods.keys()];

export const shimCalls: fc.Arbitrary<CallSpec> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc
      .record({
        method: fc.constantFrom(...wireNames.filter((n) => n !== "Create")),
        id: ghostIds,
        execId: fc.constantFrom("", "e1"),
      })
      .map(({ method, id, execId }) => ({
        service: TASK,
        method,
        payload: taskMethods.get(method)!.requestType.encode({ id, execId, signal: 9 }),
      })),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      service: fc.constant(TASK),
      method: fc.constantFrom(...wireNames.filter((n) => n !== "Create")),
      payload: fc.option(fc.uint8Array({ maxLength: 48 }), { nil: undefined }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      service: fc.oneof(
        fc.constant(TASK),
        fc.constantFrom("containerd.task.v3.Task", "", "Task"),
        fc.string(),
      ),
      method: fc.oneof(fc.constantFrom("state", "STATE", "", "__proto__", "constructor"), fc.string()),
      payload: fc.option(fc.uint8Array({ maxLength: 16 }), { nil: undefined }),
    }),
  },
);

export const connectProbe = {
  call: { service: TASK, method: "Connect", payload: TaskService.methods.connect.requestType.encode({}) },
  code: 0,
};

/** Problems with the status a shim answered `method` with (none for a proper one). */
export function statusProblems(method: string, code: number, message: string): string[] {
  if (
    code !== 0 &&
    /TypeError|ReferenceError|Cannot read propert|is not a function|is not iterable|Maximum call stack/.test(
      message,
    )
  )
    return [`${method}: a JS error surfaced as code ${code}: ${message}`];
  if (PROPER.has(code)) return [];
  if (code === 2 && RUNC_BACKED.has(method) && /^(OCI runtime|mount rootfs|pids:)/.test(message)) return [];
  return [`${method}: improper status ${code}: ${message}`];
}
