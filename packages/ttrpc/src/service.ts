// Service descriptors: the shape that packages/protocol generates and that the ttrpc client and
// server consume. ttrpc only ever sees bytes; the codecs here turn them into typed messages, so
// ttrpc stays independent of any schema.

/** How a method streams, as in gRPC. */
export type StreamKind = "unary" | "client" | "server" | "bidi";

/** Turns one message type into bytes and back (protobufjs static classes fit this shape). */
export interface MessageCodec<T> {
  encode(message: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

export interface MethodDescriptor<Req = unknown, Res = unknown, K extends StreamKind = StreamKind> {
  /** The wire name, e.g. "Create". */
  readonly name: string;
  readonly kind: K;
  readonly requestType: MessageCodec<Req>;
  readonly responseType: MessageCodec<Res>;
}

// biome-ignore lint/suspicious/noExplicitAny: a method table holds methods of any message types
export type AnyMethod = MethodDescriptor<any, any, StreamKind>;

/**
 * A service: its full wire name (e.g. "containerd.task.v2.Task") and its methods keyed by the
 * lowerCamel name used in TypeScript (e.g. `create` for wire method "Create").
 */
export interface ServiceDescriptor<M extends Record<string, AnyMethod> = Record<string, AnyMethod>> {
  readonly name: string;
  readonly methods: M;
}

export type RequestOf<M> = M extends MethodDescriptor<infer Req, unknown, StreamKind> ? Req : never;
export type ResponseOf<M> = M extends MethodDescriptor<unknown, infer Res, StreamKind> ? Res : never;
