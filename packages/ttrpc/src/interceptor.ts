// Interceptors: functions wrapped around every call, on the server around the handlers and on
// the client around the sending of requests. The shape is the one connect-es uses: an
// interceptor receives the next handler and returns a handler of its own, which may look at or
// replace the call before passing it on, refuse it by throwing, or wrap the promise it gets back
// (timing, logging, error mapping).
//
// The first interceptor of a list is the outermost: it sees the call first and the result last.
// A chain is put together for each call, so an interceptor's outer function runs per call too:
// state meant to outlive a call belongs outside the interceptor.

import type { CallContext } from "./call-context.js";
import type { CallOptions } from "./client.js";
import type { StreamKind } from "./service.js";

/** A call as server interceptors see it. */
export interface ServerCall {
  /** Wire names, e.g. "containerd.task.v2.Task" and "Create". */
  readonly service: string;
  readonly method: string;
  /** The method's kind, as in its descriptor: "unary", "server", "client" or "bidi" streaming. */
  readonly kind: StreamKind;
  /** The decoded request (unary and server streaming). */
  readonly request?: unknown;
  /** The requests as they arrive (client and bidi streaming). */
  readonly requests?: AsyncIterable<unknown>;
  /** What the handler receives as its ctx: metadata, signal, deadline, peer. */
  readonly ctx: CallContext;
}

/**
 * Runs a server call. Unary and client streaming: resolves with the response message (which is
 * then encoded and sent). Server and bidi streaming: resolves once the handler's messages are all
 * sent (the stream is then closed), rejects with the error that ended the stream.
 * A rejection becomes the call's status: a TtrpcError keeps its code, anything else is Unknown.
 */
export type ServerHandler = (call: ServerCall) => Promise<unknown>;
export type ServerInterceptor = (next: ServerHandler) => ServerHandler;

/** A call as client interceptors see it. */
export interface ClientCall {
  readonly service: string;
  readonly method: string;
  readonly kind: StreamKind;
  /**
   * Unary and server streaming: the request — the message for typed stubs, its bytes for
   * client.call() and client.openStream().
   */
  readonly request?: unknown;
  /** Deadline, signal and metadata of the call; pass a copy to next() to change them. */
  readonly options: CallOptions;
}

/**
 * Sends a client call. Unary: resolves with the response (decoded for typed stubs, bytes for
 * client.call()). Streaming kinds: resolves (with undefined) when the stream ends well, rejects
 * with its error; the caller reads the stream itself as usual. An interceptor that throws before
 * calling next() fails the call without sending anything.
 */
export type ClientHandler = (call: ClientCall) => Promise<unknown>;
export type ClientInterceptor = (next: ClientHandler) => ClientHandler;

/** Wraps `inner` in the interceptors, the first one outermost. */
export function applyInterceptors<C>(
  interceptors: readonly ((next: (call: C) => Promise<unknown>) => (call: C) => Promise<unknown>)[],
  inner: (call: C) => Promise<unknown>,
): (call: C) => Promise<unknown> {
  let handler = inner;
  for (let i = interceptors.length - 1; i >= 0; i--) handler = interceptors[i]!(handler);
  return handler;
}

const ignore = () => {};

/**
 * The promise an innermost handler hands back to the interceptors. An interceptor that drops it
 * must not turn a failed call into an unhandled rejection (which ends a Node process), so it is
 * marked handled; whoever awaits it still sees the rejection.
 */
export function handedBack(p: Promise<unknown>): Promise<unknown> {
  p.catch(ignore);
  return p;
}
