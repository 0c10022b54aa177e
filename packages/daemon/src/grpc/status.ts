// Errors to gRPC statuses. Handlers fail with our TtrpcError, whose codes are gRPC's own numbers
// (containerd maps its errdefs onto the same codes on both transports), so the code passes as it
// is; anything else becomes Unknown with its message, as on our ttrpc server. A code outside
// gRPC's range (a bug) is sent as Unknown rather than confuse the client.
import type { Metadata, StatusObject } from "@grpc/grpc-js";
import { Code, toTtrpcError } from "@tsrunc/ttrpc";

/** What grpc-js takes as a call's failure (a partial StatusObject). */
export interface GrpcStatus {
  code: number;
  details: string;
  metadata?: Metadata;
}

/** gRPC's largest code (Unauthenticated). */
const maxCode = 16;

export function grpcStatusOf(err: unknown): GrpcStatus {
  const e = toTtrpcError(err);
  const code = Number.isInteger(e.code) && e.code > 0 && e.code <= maxCode ? e.code : Code.Unknown;
  return { code, details: e.message };
}

/** The same as a grpc-js StatusObject (for the few places that want the full shape). */
export function statusObjectOf(err: unknown, metadata: Metadata): StatusObject {
  return { ...grpcStatusOf(err), metadata };
}
