// The gRPC Registrar: mounts a service written for our ttrpc Server (a generated
// ServiceDescriptor and its handlers) on a grpc-js Server. Each method becomes a grpc-js method
// definition at `/<service>/<Method>` with its stream flags and our generated codecs as the
// (de)serializers; each call is run as on ttrpc: the handler gets the decoded request (or an
// async iterable of requests) and a CallContext (grpc/call-context.ts), and what it returns,
// yields or throws becomes the response, the stream's messages or the status (grpc/status.ts).
// Server streams respect backpressure (a full HTTP/2 window waits for `drain`) and stop
// pulling from the handler once the call is cancelled.
import type {
  Server as GrpcServer,
  ServerDuplexStream,
  ServerReadableStream,
  ServerUnaryCall,
  ServerWritableStream,
  ServiceDefinition,
  sendUnaryData,
  UntypedServiceImplementation,
} from "@grpc/grpc-js";
import type { AnyMethod, CallContext, ServiceDescriptor, ServiceImpl } from "@tsrunc/ttrpc";
import type { Registrar } from "../server.js";
import { grpcCallContext } from "./call-context.js";
import { grpcStatusOf } from "./status.js";

type AnyHandler = (req: unknown, ctx: CallContext) => unknown;

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The grpc-js definition of a descriptor's methods, keyed like its TypeScript method names. */
export function grpcDefinitionOf(desc: ServiceDescriptor): ServiceDefinition {
  const def: Record<string, ServiceDefinition[string]> = {};
  for (const [key, m] of Object.entries(desc.methods) as [string, AnyMethod][]) {
    def[key] = {
      path: `/${desc.name}/${m.name}`,
      originalName: m.name,
      requestStream: m.kind === "client" || m.kind === "bidi",
      responseStream: m.kind === "server" || m.kind === "bidi",
      requestSerialize: (msg: unknown) => toBuffer(m.requestType.encode(msg)),
      requestDeserialize: (bytes: Buffer) => m.requestType.decode(bytes),
      responseSerialize: (msg: unknown) => toBuffer(m.responseType.encode(msg)),
      responseDeserialize: (bytes: Buffer) => m.responseType.decode(bytes),
    };
  }
  return def;
}

/** Waits until a stream may be written again, or the call is gone. */
function drained(call: NodeJS.EventEmitter, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.removeListener("drain", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    call.once("drain", done);
    signal.addEventListener("abort", done, { once: true });
  });
}

async function sendStream(
  call: ServerWritableStream<unknown, unknown> | ServerDuplexStream<unknown, unknown>,
  messages: () => AsyncIterable<unknown> | Iterable<unknown>,
  ctx: ReturnType<typeof grpcCallContext>,
): Promise<void> {
  try {
    for await (const msg of messages()) {
      if (ctx.signal.aborted) break;
      if (!call.write(msg)) await drained(call, ctx.signal);
    }
    if (!call.cancelled) call.end();
  } catch (err) {
    if (!call.cancelled) call.emit("error", grpcStatusOf(err));
  } finally {
    ctx.dispose();
  }
}

function answer(
  callback: sendUnaryData<unknown>,
  run: () => unknown,
  ctx: ReturnType<typeof grpcCallContext>,
): void {
  Promise.resolve()
    .then(run)
    .then(
      (res) => callback(null, res),
      (err: unknown) => callback(grpcStatusOf(err)),
    )
    .finally(() => ctx.dispose());
}

/** grpc-js handlers that run `impl`'s handlers as our ttrpc server would. */
export function grpcImplementationOf<S extends ServiceDescriptor>(
  desc: S,
  impl: ServiceImpl<S>,
  onCall?: (service: string, method: string) => void,
): UntypedServiceImplementation {
  const out: UntypedServiceImplementation = {};
  for (const [key, m] of Object.entries(desc.methods) as [string, AnyMethod][]) {
    const handler = (impl as Record<string, AnyHandler>)[key];
    if (typeof handler !== "function") throw new Error(`grpc: no handler for ${desc.name}/${m.name}`);
    const context = (call: Parameters<typeof grpcCallContext>[0]) => {
      onCall?.(desc.name, m.name);
      return grpcCallContext(call, desc.name, m.name);
    };
    switch (m.kind) {
      case "unary":
        out[key] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
          const ctx = context(call);
          answer(callback, () => handler(call.request, ctx), ctx);
        };
        break;
      case "client":
        out[key] = (call: ServerReadableStream<unknown, unknown>, callback: sendUnaryData<unknown>) => {
          const ctx = context(call);
          answer(callback, () => handler(call, ctx), ctx);
        };
        break;
      case "server":
        out[key] = (call: ServerWritableStream<unknown, unknown>) => {
          const ctx = context(call);
          void sendStream(call, () => handler(call.request, ctx) as Iterable<unknown>, ctx);
        };
        break;
      case "bidi":
        out[key] = (call: ServerDuplexStream<unknown, unknown>) => {
          const ctx = context(call);
          void sendStream(call, () => handler(call, ctx) as Iterable<unknown>, ctx);
        };
        break;
    }
  }
  return out;
}

/** Replaces a service's handlers (e.g. with refusals) before it is mounted. */
export type ImplOverride = <S extends ServiceDescriptor>(desc: S, impl: ServiceImpl<S>) => ServiceImpl<S>;

/** A Registrar on a grpc-js Server (with `override`, the handlers it substitutes). */
export class GrpcRegistrar implements Registrar {
  readonly #names = new Set<string>();

  constructor(
    readonly server: GrpcServer,
    private readonly override?: ImplOverride,
    /** Told of every call as it starts (tsruncd logs them at trace level). */
    private readonly onCall?: (service: string, method: string) => void,
  ) {}

  register<S extends ServiceDescriptor>(desc: S, impl: ServiceImpl<S>): this {
    if (this.#names.has(desc.name)) throw new Error(`grpc: service ${desc.name} registered twice`);
    this.#names.add(desc.name);
    this.server.addService(
      grpcDefinitionOf(desc),
      grpcImplementationOf(desc, this.override ? this.override(desc, impl) : impl, this.onCall),
    );
    return this;
  }

  /** The services registered so far (wire names). */
  get services(): ReadonlySet<string> {
    return this.#names;
  }
}

/** Registers every service on each of several registrars. */
export function teeRegistrar(...targets: Registrar[]): Registrar {
  return {
    register(desc, impl) {
      for (const t of targets) t.register(desc, impl);
      return this;
    },
  };
}

/** Handlers that fail every call of `desc` with `error()`. */
export function refuseAll(error: () => Error): ImplOverride {
  return <S extends ServiceDescriptor>(desc: S) => {
    const out: Record<string, () => never> = {};
    for (const key of Object.keys(desc.methods))
      out[key] = () => {
        throw error();
      };
    return out as unknown as ServiceImpl<S>;
  };
}
