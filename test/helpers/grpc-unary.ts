// A minimal gRPC unary client over node:http2 on a unix socket, for containerd API calls that
// ctr 1.6 has no command for (Tasks.Update: `ctr task update` came in 1.7). gRPC on the wire:
// POST /<service>/<method>, content-type application/grpc, te: trailers; each message is framed
// as 1 byte "compressed" (0) + 4 bytes big-endian length + the protobuf bytes; the status comes
// in the trailers (grpc-status, grpc-message) or, for an immediate failure, in the headers.
import * as http2 from "node:http2";
import * as net from "node:net";

export class GrpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** Calls `/<service>/<method>` with `request` (already encoded) and resolves with the reply's bytes. */
export function grpcUnary(
  socketPath: string,
  service: string,
  method: string,
  request: Uint8Array,
  metadata: Record<string, string> = {},
  timeoutMs = 10_000,
): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const session = http2.connect("http://localhost", { createConnection: () => net.connect(socketPath) });
    const fail = (err: Error) => {
      session.destroy();
      reject(err);
    };
    session.on("error", fail);
    const stream = session.request({
      ":method": "POST",
      ":path": `/${service}/${method}`,
      "content-type": "application/grpc",
      te: "trailers",
      ...metadata,
    });
    stream.setTimeout(timeoutMs, () => fail(new Error(`gRPC ${method}: no answer in ${timeoutMs} ms`)));
    const chunks: Buffer[] = [];
    let status: { code: number; message: string } | undefined;
    const take = (h: http2.IncomingHttpHeaders) => {
      if (h["grpc-status"] !== undefined) {
        status = {
          code: Number(h["grpc-status"]),
          message: decodeURIComponent(String(h["grpc-message"] ?? "")),
        };
      }
    };
    stream.on("response", take);
    stream.on("trailers", take);
    stream.on("data", (d: Buffer) => chunks.push(d));
    stream.on("error", fail);
    stream.on("end", () => {
      session.close();
      if (!status) return reject(new Error(`gRPC ${method}: no status`));
      if (status.code !== 0) return reject(new GrpcError(status.code, status.message));
      const body = Buffer.concat(chunks);
      if (body.length < 5) return resolve(new Uint8Array());
      resolve(new Uint8Array(body.subarray(5, 5 + body.readUInt32BE(1))));
    });
    const frame = Buffer.alloc(5 + request.length);
    frame.writeUInt32BE(request.length, 1);
    frame.set(request, 5);
    stream.end(frame);
  });
}
