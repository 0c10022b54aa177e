// Public API of @tsrunc/ttrpc: a ttrpc client and server, wire-compatible with containerd's Go
// ttrpc, plus the pieces other packages build on (status codes, frame codec, unix sockets).

export {
  type BidiStreamingCall,
  type CallOptions,
  Client,
  type ClientOptions,
  type ClientStreamingCall,
  type ClientStub,
  type ConnectOptions,
  type RawStream,
  type StubMethod,
} from "./client.js";
export {
  encodeFrame,
  Flags,
  FrameDecoder,
  type FrameSink,
  HEADER_LENGTH,
  MAX_DATA_LENGTH,
  MessageType,
  writeHeader,
} from "./frame-codec.js";
export type {
  ClientCall,
  ClientHandler,
  ClientInterceptor,
  ServerCall,
  ServerHandler,
  ServerInterceptor,
} from "./interceptor.js";
export { type InMemoryOptions, memoryPair, serveInMemory } from "./memory-transport.js";
export {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  type KeyValue,
  type Request,
  type RequestInit,
  type Response,
  type ResponseInit,
  type Status,
} from "./messages.js";
export type { IncomingMetadata, Metadata } from "./metadata.js";
export {
  type BidiStreamingHandler,
  type CallContext,
  type ClientStreamingHandler,
  DEFAULT_MAX_STREAMS_PER_CONNECTION,
  type HandlerOf,
  type PeerCredentials,
  Server,
  type ServerOptions,
  type ServerStreamingHandler,
  type ServiceImpl,
  type ShutdownOptions,
  type UnaryHandler,
} from "./server.js";
export * from "./service.js";
export {
  Code,
  codeOf,
  errdefs,
  isCode,
  type StatusDetail,
  TtrpcError,
  type TtrpcErrorOptions,
  toTtrpcError,
} from "./status.js";
export {
  type ConnectUnixOptions,
  connectUnix,
  type ListenUnixOptions,
  listenUnix,
  MAX_SOCKET_PATH_BYTES,
  socketPathOf,
} from "./unix.js";
