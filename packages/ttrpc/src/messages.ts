// The two envelope messages of ttrpc (github.com/containerd/ttrpc request.proto) and the
// google.rpc.Status they carry. Payloads inside are opaque bytes: what they mean is the business
// of the service descriptors (packages/protocol), never of ttrpc.
//
// protobufjs reflection built from a JSON descriptor: on first use each Type compiles a
// specialised encoder and decoder with `new Function`, which runs as fast as protobufjs's static
// code generation without a build step (~200 ns to encode or decode a Request on this machine, far below a round trip's cost).

import protobuf from "protobufjs/light.js";
import type { StatusDetail } from "./status.js";

const descriptor = {
  nested: {
    ttrpc: {
      nested: {
        Request: {
          fields: {
            service: { type: "string", id: 1 },
            method: { type: "string", id: 2 },
            payload: { type: "bytes", id: 3 },
            timeoutNano: { type: "int64", id: 4 },
            metadata: { rule: "repeated", type: "KeyValue", id: 5 },
          },
        },
        Response: {
          fields: {
            status: { type: "google.rpc.Status", id: 1 },
            payload: { type: "bytes", id: 2 },
          },
        },
        KeyValue: {
          fields: {
            key: { type: "string", id: 1 },
            value: { type: "string", id: 2 },
          },
        },
      },
    },
    google: {
      nested: {
        rpc: {
          nested: {
            Status: {
              fields: {
                code: { type: "int32", id: 1 },
                message: { type: "string", id: 2 },
                details: { rule: "repeated", type: "google.protobuf.Any", id: 3 },
              },
            },
          },
        },
        protobuf: {
          nested: {
            Any: {
              fields: {
                typeUrl: { type: "string", id: 1 },
                value: { type: "bytes", id: 2 },
              },
            },
          },
        },
      },
    },
  },
};

const root = protobuf.Root.fromJSON(descriptor);
const RequestType = root.lookupType("ttrpc.Request");
const ResponseType = root.lookupType("ttrpc.Response");

export interface KeyValue {
  key: string;
  value: string;
}

export interface Request {
  service: string;
  method: string;
  payload: Uint8Array;
  /** Nanoseconds; 0 means no deadline. */
  timeoutNano: number;
  metadata: KeyValue[];
  /**
   * Whether field 3 was on the wire. Go's server delivers a streaming-client request's payload
   * as the first message only when it is present. proto3 makes an empty bytes field absent
   * (Go's encoder never writes one, protobufjs's decoder drops one), so this is also length > 0.
   */
  hasPayload: boolean;
}

export interface Status {
  code: number;
  message: string;
  details: StatusDetail[];
}

export interface Response {
  status: Status;
  payload: Uint8Array;
}

export interface RequestInit {
  service: string;
  method: string;
  /** Omitted from the wire when undefined (streaming-client requests carry no payload). */
  payload?: Uint8Array | undefined;
  timeoutNano?: number;
  metadata?: KeyValue[];
}

export function encodeRequest(req: RequestInit): Uint8Array {
  return RequestType.encode(req as unknown as Record<string, unknown>).finish();
}

// protobufjs sets an own property only for the fields present on the wire (and non-empty);
// absent fields fall through to the prototype's defaults.
const hasOwn = Object.prototype.hasOwnProperty;

// int64 decodes to a Long when the long package is around, to a number otherwise.
function int64ToNumber(v: unknown): number {
  if (typeof v === "number") return v;
  if (v && typeof (v as { toNumber?: unknown }).toNumber === "function")
    return (v as { toNumber(): number }).toNumber();
  return 0;
}

/** Throws (a plain Error from protobufjs) when the bytes are not a Request. */
export function decodeRequest(bytes: Uint8Array): Request {
  const m = RequestType.decode(bytes) as unknown as Record<string, unknown>;
  const hasPayload = hasOwn.call(m, "payload");
  return {
    service: m.service as string,
    method: m.method as string,
    payload: m.payload as Uint8Array,
    timeoutNano: int64ToNumber(m.timeoutNano),
    metadata: m.metadata as KeyValue[],
    hasPayload,
  };
}

export interface ResponseInit {
  /** Omitted (OK) when undefined. */
  status?: { code: number; message?: string; details?: StatusDetail[] } | undefined;
  payload?: Uint8Array | undefined;
}

export function encodeResponse(res: ResponseInit): Uint8Array {
  return ResponseType.encode(res as unknown as Record<string, unknown>).finish();
}

const OK_STATUS: Status = Object.freeze({ code: 0, message: "", details: [] }) as Status;

/** Throws (a plain Error from protobufjs) when the bytes are not a Response. */
export function decodeResponse(bytes: Uint8Array): Response {
  const m = ResponseType.decode(bytes) as unknown as { status?: Status | null; payload: Uint8Array };
  const s = m.status;
  return {
    status: s
      ? {
          code: s.code,
          message: s.message,
          details:
            s.details.length === 0 ? [] : s.details.map((d) => ({ typeUrl: d.typeUrl, value: d.value })),
        }
      : OK_STATUS,
    payload: m.payload,
  };
}
