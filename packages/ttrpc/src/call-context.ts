// What a server-side handler is given besides its request, and the handler shapes for the four
// stream kinds. Kept apart from the server's machinery so that service code (and interceptors)
// can name these types without pulling in connections and dispatch.

import type { IncomingMetadata } from "./metadata.js";
import type { KindOf, RequestOf, ResponseInputOf, ServiceDescriptor } from "./service.js";

/** Credentials of the process at the other end of a unix socket (SO_PEERCRED). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** What a handler learns about its call besides the request. */
export interface CallContext {
  /** Aborts when the deadline passes (reason: DeadlineExceeded) or the peer goes away (Canceled). */
  readonly signal: AbortSignal;
  /**
   * Request metadata, keys lowercased. Interceptors may assign a new record here (the one
   * received may be frozen): handlers that run after them see the replacement.
   */
  metadata: IncomingMetadata;
  /** Deadline in ms since the epoch (Date.now() scale), when the client sent a timeout. */
  readonly deadline: number | undefined;
  /** Wire names, e.g. "containerd.task.v2.Task" and "Create". */
  readonly service: string;
  readonly method: string;
  /** The peer's credentials when a peerCredentials provider is configured. */
  readonly peer: PeerCredentials | undefined;
}

export type UnaryHandler<Req, Res> = (req: Req, ctx: CallContext) => Res | Promise<Res>;
export type ServerStreamingHandler<Req, Res> = (
  req: Req,
  ctx: CallContext,
) => AsyncIterable<Res> | Iterable<Res>;
export type ClientStreamingHandler<Req, Res> = (
  reqs: AsyncIterable<Req>,
  ctx: CallContext,
) => Res | Promise<Res>;
export type BidiStreamingHandler<Req, Res> = (
  reqs: AsyncIterable<Req>,
  ctx: CallContext,
) => AsyncIterable<Res> | Iterable<Res>;

/** The handler type for one method, chosen by its stream kind. */
export type HandlerOf<M> =
  KindOf<M> extends "unary"
    ? UnaryHandler<RequestOf<M>, ResponseInputOf<M>>
    : KindOf<M> extends "server"
      ? ServerStreamingHandler<RequestOf<M>, ResponseInputOf<M>>
      : KindOf<M> extends "client"
        ? ClientStreamingHandler<RequestOf<M>, ResponseInputOf<M>>
        : KindOf<M> extends "bidi"
          ? BidiStreamingHandler<RequestOf<M>, ResponseInputOf<M>>
          : never;

/** An implementation of a service: one handler per method, keyed like the descriptor's methods. */
export type ServiceImpl<S extends ServiceDescriptor> = {
  [K in keyof S["methods"]]: HandlerOf<S["methods"][K]>;
};
