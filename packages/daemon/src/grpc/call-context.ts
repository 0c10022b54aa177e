// A grpc-js call seen as the CallContext our handlers take on either transport: metadata as
// lowercased keys with lists of values (gRPC's keys are lowercase on the wire already; binary
// `-bin` entries carry nothing a handler reads and are left out), the deadline in ms since the
// epoch, and an AbortSignal that fires when the client cancels or goes away (Canceled) or the
// deadline passes (DeadlineExceeded). dispose() lets go of the timer and listener once the
// call is answered.
import type { Deadline, Metadata } from "@grpc/grpc-js";
import type { CallContext, IncomingMetadata } from "@tsrunc/ttrpc";
import { Code, TtrpcError } from "@tsrunc/ttrpc";

export interface GrpcCallContext extends CallContext {
  dispose(): void;
}

/** What every grpc-js server call offers (grpc-js does not export the type). */
export interface ServerSurfaceCall {
  readonly cancelled: boolean;
  readonly metadata: Metadata;
  getDeadline(): Deadline;
  on(event: "cancelled", listener: () => void): unknown;
  removeListener(event: "cancelled", listener: () => void): unknown;
}

/** Keeps a timer within setTimeout's range (about 24.8 days). */
const maxTimerMs = 2 ** 31 - 1;

export function incomingMetadata(md: Metadata): IncomingMetadata {
  const out = Object.create(null) as IncomingMetadata;
  for (const [key, values] of Object.entries(md.toJSON())) {
    if (key.endsWith("-bin")) continue;
    const strings = values.filter((v): v is string => typeof v === "string");
    if (strings.length) out[key.toLowerCase()] = strings;
  }
  return out;
}

function deadlineOf(call: ServerSurfaceCall): number | undefined {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(ms) ? ms : undefined;
}

export function grpcCallContext(call: ServerSurfaceCall, service: string, method: string): GrpcCallContext {
  const controller = new AbortController();
  const deadline = deadlineOf(call);
  let timer: NodeJS.Timeout | undefined;
  // grpc-js ends a call whose deadline passed itself and reports it as cancelled: tell the two apart.
  const onCancel = () =>
    controller.abort(
      deadline !== undefined && Date.now() >= deadline - 10
        ? new TtrpcError(Code.DeadlineExceeded, "deadline exceeded")
        : new TtrpcError(Code.Canceled, "the client cancelled the call"),
    );
  if (call.cancelled) onCancel();
  else call.on("cancelled", onCancel);
  if (deadline !== undefined && !controller.signal.aborted) {
    const fire = () => controller.abort(new TtrpcError(Code.DeadlineExceeded, "deadline exceeded"));
    const wait = deadline - Date.now();
    if (wait <= 0) fire();
    else timer = setTimeout(fire, Math.min(wait, maxTimerMs));
  }
  return {
    signal: controller.signal,
    metadata: incomingMetadata(call.metadata),
    deadline,
    service,
    method,
    peer: undefined,
    dispose() {
      if (timer) clearTimeout(timer);
      call.removeListener("cancelled", onCancel);
    },
  };
}
