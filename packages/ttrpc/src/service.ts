// Service descriptors: the shape that packages/protocol generates and that the ttrpc client and
// server consume. ttrpc only ever sees bytes; the codecs here turn them into typed messages, so
// ttrpc stays independent of any schema.

/** How a method streams, as in gRPC. */
export type StreamKind = "unary" | "client" | "server" | "bidi";

/** Turns one message type into bytes and back (protobufjs static classes fit this shape). */
export interface MessageCodec<T, In = T> {
  /** `In` may be wider than T: generated codecs accept messages with fields left out. */
  encode(message: In): Uint8Array;
  decode(bytes: Uint8Array): T;
}

export interface MethodDescriptor<
  Req = unknown,
  Res = unknown,
  K extends StreamKind = StreamKind,
  ReqIn = Req,
  ResIn = Res,
> {
  /** The wire name, e.g. "Create". */
  readonly name: string;
  readonly kind: K;
  readonly requestType: MessageCodec<Req, ReqIn>;
  readonly responseType: MessageCodec<Res, ResIn>;
}

// biome-ignore lint/suspicious/noExplicitAny: a method table holds methods of any message types
export type AnyMethod = MethodDescriptor<any, any, StreamKind, any, any>;

/**
 * A service: its full wire name (e.g. "containerd.task.v2.Task") and its methods keyed by the
 * lowerCamel name used in TypeScript (e.g. `create` for wire method "Create").
 */
export interface ServiceDescriptor<M extends Record<string, AnyMethod> = Record<string, AnyMethod>> {
  readonly name: string;
  readonly methods: M;
}

/** What decoding a method's request or response yields (read from the codec, not the input type). */
export type RequestOf<M> = M extends { requestType: { decode(bytes: Uint8Array): infer Req } } ? Req : never;
export type ResponseOf<M> = M extends { responseType: { decode(bytes: Uint8Array): infer Res } }
  ? Res
  : never;
export type KindOf<M> = M extends { kind: infer K } ? K : never;

/**
 * What a codec's encode accepts for a method's request or response. Generated codecs accept more
 * than the decoded type (every field optional), so stubs and handlers take that wider shape.
 */
export type RequestInputOf<M> = M extends { requestType: { encode(message: infer I): Uint8Array } }
  ? I
  : never;
export type ResponseInputOf<M> = M extends { responseType: { encode(message: infer I): Uint8Array } }
  ? I
  : never;
