// Calls to a method nobody registered. grpc-js answers them Unimplemented with a message of its
// own; containerd's clients get Go gRPC's ("unknown service S", "unknown method M for service
// S", "malformed method name: \"P\""), so tsruncd answers with those, the same code, and a debug
// log line naming the path — the quickest way to see what a client asks that we lack.
//
// grpc-js has no public hook for this: the server's handler lookup (`_retrieveHandler`, stable
// since 1.10) is wrapped on the instance. Should a grpc-js release drop it, the wrapper is not
// installed and grpc-js's own Unimplemented answer stands (the code is what clients act on).
import type { Server as GrpcServer, ServerDuplexStream } from "@grpc/grpc-js";
import { Code } from "@tsrunc/ttrpc";

interface HandlerRecord {
  func: (call: ServerDuplexStream<Buffer, Buffer>) => void;
  serialize: (value: Buffer) => Buffer;
  deserialize: (bytes: Buffer) => Buffer;
  type: "bidi";
  path: string;
}

type Lookup = (path: string) => unknown;

/** Go gRPC's message for a call to `path` that no service handles, given the services we have. */
export function unknownMethodMessage(path: string, services: ReadonlySet<string>): string {
  const m = /^\/?([^/]+)\/([^/]+)$/.exec(path);
  if (!m) return `malformed method name: ${JSON.stringify(path)}`;
  const [, service, method] = m as unknown as [string, string, string];
  return services.has(service)
    ? `unknown method ${method} for service ${service}`
    : `unknown service ${service}`;
}

export function answerUnknownMethods(
  server: GrpcServer,
  services: ReadonlySet<string>,
  onUnknown: (path: string) => void,
): boolean {
  const target = server as unknown as { _retrieveHandler?: Lookup };
  const original = target._retrieveHandler;
  if (typeof original !== "function") return false;
  target._retrieveHandler = function (this: unknown, path: string) {
    const found = original.call(this, path);
    if (found) return found;
    const p = String(path).slice(0, 300);
    onUnknown(p);
    const record: HandlerRecord = {
      func: (call) => {
        call.on("error", () => {});
        call.emit("error", { code: Code.Unimplemented, details: unknownMethodMessage(p, services) });
      },
      serialize: (v) => v,
      deserialize: (b) => b,
      type: "bidi",
      path: p,
    };
    return record;
  };
  return true;
}
