// A small CRI v1 client for tests: the protos in test/proto/cri/api.proto (a trimmed copy of
// kubernetes cri-api's, checked by test/cri-proto.test.ts) loaded at run time by
// @grpc/proto-loader, spoken with @grpc/grpc-js over containerd's grpc socket, where the CRI
// plugin serves runtime.v1.RuntimeService and runtime.v1.ImageService — as kubelet does.
// Messages are plain objects with the protos' snake_case names; enums are their names
// ("CONTAINER_RUNNING"), int64s are numbers.
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

export const CRI_PROTO = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "../../../proto/cri/api.proto",
);

// biome-ignore lint/suspicious/noExplicitAny: CRI messages are read field by field in the tests
export type Msg = Record<string, any>;

export class CriError extends Error {
  constructor(
    readonly method: string,
    readonly code: number,
    readonly details: string,
  ) {
    super(`CRI ${method}: ${grpc.status[code] ?? code}: ${details}`);
  }
}

let loaded: grpc.GrpcObject | undefined;
function criPackage(): grpc.GrpcObject {
  loaded ??= grpc.loadPackageDefinition(
    protoLoader.loadSync(CRI_PROTO, { keepCase: true, longs: Number, enums: String, defaults: true }),
  );
  return (loaded.runtime as grpc.GrpcObject).v1 as grpc.GrpcObject;
}

type Unary = (
  req: Msg,
  md: grpc.Metadata,
  opts: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res: Msg) => void,
) => void;

export interface CriClient {
  /** runtime.v1.RuntimeService/<method>; rejects with CriError. */
  runtime(method: string, req?: Msg, timeoutMs?: number): Promise<Msg>;
  /** runtime.v1.ImageService/<method>; rejects with CriError. */
  image(method: string, req?: Msg, timeoutMs?: number): Promise<Msg>;
  /** Every CRI method called so far (service/method), for the report. */
  readonly called: Set<string>;
  close(): void;
}

/** A CRI client on the unix socket `socketPath` (containerd's grpc address). */
export function criClient(socketPath: string): CriClient {
  const pkg = criPackage();
  const Ctor = (name: string) => pkg[name] as grpc.ServiceClientConstructor;
  const target = `unix://${socketPath}`;
  const creds = grpc.credentials.createInsecure();
  const runtime = new (Ctor("RuntimeService"))(target, creds);
  const image = new (Ctor("ImageService"))(target, creds);
  const called = new Set<string>();
  const call =
    (client: grpc.Client, service: string) =>
    (method: string, req: Msg = {}, timeoutMs = 60_000): Promise<Msg> => {
      const fn = (client as unknown as Record<string, Unary>)[method];
      if (typeof fn !== "function") return Promise.reject(new Error(`no CRI method ${service}/${method}`));
      called.add(`${service}/${method}`);
      return new Promise((resolve, reject) => {
        fn.call(
          client,
          req,
          new grpc.Metadata(),
          { deadline: Date.now() + timeoutMs },
          (err: grpc.ServiceError | null, res: Msg) => {
            if (err) reject(new CriError(method, err.code, err.details));
            else resolve(res);
          },
        );
      });
    };
  return {
    runtime: call(runtime, "RuntimeService"),
    image: call(image, "ImageService"),
    called,
    close() {
      runtime.close();
      image.close();
    },
  };
}
