// Running one call on the server, for the four stream kinds: decode the request (or open the
// request stream), run the handler — through the interceptors when there are any — and send
// what it produces: one Response for unary and client streaming, data frames closed by an empty
// remote-closed frame for server and bidi streaming. Any failure on the way ends the stream
// with a status, through the connection's fail().

import { Flags, MAX_DATA_LENGTH, MessageType } from "./frame-codec.js";
import { applyInterceptors, handedBack, type ServerCall, type ServerHandler } from "./interceptor.js";
import { encodeResponse, type Request } from "./messages.js";
import type { ServerConnection } from "./server-connection.js";
import type { ServerStream } from "./server-stream.js";
import type { StreamKind } from "./service.js";
import { Code, TtrpcError, toTtrpcError } from "./status.js";

/** What decodeMessage returns when the message could not be decoded (the stream is then failed). */
export const UNDECODABLE: unique symbol = Symbol("undecodable");

/**
 * Decodes one request message of `stream`. When the bytes do not decode, the stream is ended
 * InvalidArgument ("ttrpc: cannot decode <what>") and UNDECODABLE is returned.
 */
export function decodeMessage(
  conn: ServerConnection,
  stream: ServerStream,
  bytes: Uint8Array,
  what: "request payload" | "stream message",
): unknown {
  try {
    return stream.reg.method.requestType.decode(bytes);
  } catch (err) {
    conn.fail(stream, new TtrpcError(Code.InvalidArgument, `ttrpc: cannot decode ${what}`, { cause: err }));
    return UNDECODABLE;
  }
}

/** Server and bidi streaming answer with a stream of messages; the others with one Response. */
function streamsOut(kind: StreamKind): boolean {
  return kind === "server" || kind === "bidi";
}

/** Starts a call whose Request was accepted and whose stream is registered on the connection. */
export function dispatch(conn: ServerConnection, stream: ServerStream, req: Request, flags: number): void {
  const kind = stream.reg.method.kind as StreamKind;
  // The handler's first argument: the request, or the stream of requests.
  let arg: unknown;
  if (kind === "unary" || kind === "server") {
    // Unary calls arm their deadline lazily (CallContext.signal); a server stream must stop
    // sending at the deadline even if its handler never looks at the signal.
    if (kind === "server") stream.armDeadline();
    arg = decodeMessage(conn, stream, req.payload, "request payload");
    if (arg === UNDECODABLE) return;
  } else {
    const input = stream.openInput(conn.inputHooks(stream));
    // Armed once the request stream exists, so that a deadline already past fails it (the
    // handler ends and the client is answered) rather than a call with nothing to fail yet.
    stream.armDeadline();
    // As Go ttrpc: a payload present in the Request is the first message of the stream.
    if (req.hasPayload) {
      const first = decodeMessage(conn, stream, req.payload, "request payload");
      if (first === UNDECODABLE) return;
      input.push(first);
    }
    // Remote-closed on the Request: nothing follows (Go clients never do this for a streaming
    // client, but the protocol allows it).
    if ((flags & Flags.RemoteClosed) !== 0) stream.endInput();
    arg = input;
  }

  let out: unknown;
  try {
    out =
      conn.interceptors.length === 0
        ? run(conn, stream, arg, stream)
        : applyInterceptors(conn.interceptors, innermost(conn, stream))(callOf(stream, kind, arg));
  } catch (err) {
    conn.fail(stream, toTtrpcError(err));
    return;
  }
  if (isThenable(out)) {
    out.then(
      (value) => complete(conn, stream, value),
      (err) => conn.fail(stream, toTtrpcError(err)),
    );
  } else {
    complete(conn, stream, out);
  }
}

/**
 * Calls the handler. Unary and client streaming: returns what it returned (a response or a
 * promise of one). Server and bidi streaming: starts sending its messages and returns the
 * promise of that.
 */
function run(conn: ServerConnection, stream: ServerStream, arg: unknown, ctx: unknown): unknown {
  const { method, handler, impl } = stream.reg;
  const out: unknown = handler.call(impl, arg, ctx);
  return streamsOut(method.kind) ? pump(conn, stream, out) : out;
}

function callOf(stream: ServerStream, kind: StreamKind, arg: unknown): ServerCall {
  const { service, method } = stream;
  return kind === "unary" || kind === "server"
    ? { service, method, kind, request: arg, ctx: stream }
    : { service, method, kind, requests: arg as AsyncIterable<unknown>, ctx: stream };
}

/** The handler at the centre of the interceptors: it takes the request and ctx they pass on. */
function innermost(conn: ServerConnection, stream: ServerStream): ServerHandler {
  return (call) => {
    let out: unknown;
    try {
      const kind = stream.reg.method.kind;
      const arg = kind === "unary" || kind === "server" ? call.request : call.requests;
      out = run(conn, stream, arg, call.ctx);
    } catch (err) {
      return handedBack(Promise.reject(err));
    }
    return handedBack(Promise.resolve(out));
  };
}

/** The handler (or the interceptors) succeeded: answer, or close the stream of messages. */
function complete(conn: ServerConnection, stream: ServerStream, value: unknown): void {
  if (stream.finished) return;
  if (streamsOut(stream.reg.method.kind)) {
    conn.writer.frame(stream.id, MessageType.Data, Flags.RemoteClosed | Flags.NoData);
    conn.finish(stream);
  } else {
    reply(conn, stream, value);
  }
}

/** Answers a unary or client-streaming call with its response message. */
function reply(conn: ServerConnection, stream: ServerStream, res: unknown): void {
  let payload: Uint8Array;
  try {
    payload = stream.reg.method.responseType.encode(res);
  } catch (err) {
    conn.fail(stream, new TtrpcError(Code.Internal, "ttrpc: cannot encode response", { cause: err }));
    return;
  }
  const bytes = encodeResponse({ payload });
  if (bytes.length > MAX_DATA_LENGTH) {
    conn.fail(
      stream,
      new TtrpcError(
        Code.ResourceExhausted,
        `ttrpc: response of ${bytes.length} bytes exceeds ${MAX_DATA_LENGTH}`,
      ),
    );
    return;
  }
  conn.writer.frame(stream.id, MessageType.Response, 0, bytes);
  conn.finish(stream);
}

/**
 * Sends a streaming handler's messages as data frames; the closing frame is complete()'s. On
 * failure the stream is answered at once (the handler's cleanup may take a while), then the
 * handler's iterator is closed and the promise rejects with the error.
 */
async function pump(conn: ServerConnection, stream: ServerStream, out: unknown): Promise<void> {
  const it = iteratorOf(out);
  const codec = stream.reg.method.responseType;
  const writer = conn.writer;
  try {
    for (;;) {
      const r = await it.next();
      if (stream.finished || r.done) break;
      let bytes: Uint8Array;
      try {
        bytes = codec.encode(r.value);
      } catch (err) {
        throw new TtrpcError(Code.Internal, "ttrpc: cannot encode stream message", { cause: err });
      }
      if (bytes.length > MAX_DATA_LENGTH) {
        throw new TtrpcError(
          Code.ResourceExhausted,
          `ttrpc: stream message of ${bytes.length} bytes exceeds ${MAX_DATA_LENGTH}`,
        );
      }
      writer.frame(stream.id, MessageType.Data, 0, bytes);
      if (writer.needsDrain) await writer.drained();
    }
  } catch (err) {
    const e = toTtrpcError(err);
    conn.fail(stream, e);
    await closeIterator(it);
    throw e;
  }
  // Aborted (peer gone, stream failed) while the handler was still producing: stop it.
  if (stream.finished) await closeIterator(it);
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof v === "object" && v !== null && typeof (v as { then?: unknown }).then === "function";
}

function iteratorOf(out: unknown): AsyncIterator<unknown> | Iterator<unknown> {
  if (out !== null && typeof out === "object") {
    const o = out as Partial<AsyncIterable<unknown> & Iterable<unknown>>;
    const asyncIter = o[Symbol.asyncIterator];
    if (typeof asyncIter === "function") return asyncIter.call(o);
    const syncIter = o[Symbol.iterator];
    if (typeof syncIter === "function") return syncIter.call(o);
  }
  throw new TtrpcError(Code.Internal, "ttrpc: streaming handler did not return an iterable");
}

async function closeIterator(it: AsyncIterator<unknown> | Iterator<unknown>): Promise<void> {
  try {
    await it.return?.();
  } catch {
    // The handler's cleanup failing changes nothing: the stream is already over.
  }
}
