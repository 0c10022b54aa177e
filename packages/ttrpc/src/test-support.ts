// Helpers for this package's tests (not exported from index.ts): a fresh temp dir per test,
// servers and clients that close themselves in teardown, a JSON codec and a test service
// covering every stream kind, and a raw frame-level connection for protocol tests.

import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "./client.js";
import { FrameDecoder, MessageType } from "./frame-codec.js";
import { decodeResponse, type Response } from "./messages.js";
import { Server, type ServerOptions, type ServiceImpl } from "./server.js";
import type { MessageCodec, MethodDescriptor, StreamKind } from "./service.js";

/** Tap's test object, reduced to what the helpers use (keeps this file free of tap types). */
export interface Teardown {
  teardown(fn: () => unknown): void;
}

/** A fresh directory under the OS temp dir, removed after the test. Kept short: socket paths. */
export function tempDir(t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), "ttrpc-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function jsonCodec<T>(): MessageCodec<T> {
  return {
    encode: (v) => Buffer.from(JSON.stringify(v)),
    decode: (b) => JSON.parse(Buffer.from(b.buffer, b.byteOffset, b.length).toString()) as T,
  };
}

/** Raw bytes in and out. */
export const bytesCodec: MessageCodec<Uint8Array> = { encode: (b) => b, decode: (b) => b };

function method<Req, Res, K extends StreamKind>(
  name: string,
  kind: K,
  req: MessageCodec<Req>,
  res: MessageCodec<Res>,
): MethodDescriptor<Req, Res, K> {
  return { name, kind, requestType: req, responseType: res };
}

export interface Msg {
  text?: string;
  n?: number;
  delayMs?: number;
  fail?: number;
}

const json = jsonCodec<Msg>();

/** The test service: one method per stream kind plus a few behaviours. */
export const TestService = {
  name: "tsrunc.test.v1.Test",
  methods: {
    echo: method("Echo", "unary", json, json),
    echoBytes: method("EchoBytes", "unary", bytesCodec, bytesCodec),
    count: method("Count", "server", json, json),
    sum: method("Sum", "client", json, json),
    chat: method("Chat", "bidi", json, json),
  },
} as const;

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function startServer(
  t: Teardown,
  impl: Partial<ServiceImpl<typeof TestService>>,
  opts: ServerOptions = {},
): Promise<{ server: Server; path: string; dir: string }> {
  const dir = tempDir(t);
  const path = join(dir, "s.sock");
  const server = new Server(opts);
  server.register(TestService, impl as ServiceImpl<typeof TestService>);
  await server.listen(path);
  t.teardown(() => server.close());
  return { server, path, dir };
}

export async function connectClient(t: Teardown, path: string): Promise<Client> {
  const client = await Client.connect(path);
  t.teardown(() => client.close());
  return client;
}

export interface RawFrame {
  id: number;
  type: number;
  flags: number;
  data: Buffer;
}

/** A frame-level connection: send arbitrary bytes, read frames back, see when it closes. */
export class RawConn {
  readonly frames: RawFrame[] = [];
  closed = false;
  private waiters: (() => void)[] = [];
  private readonly decoder = new FrameDecoder({
    frame: (id, type, flags, data) => {
      this.frames.push({ id, type, flags, data: Buffer.from(data) });
      this.wake();
    },
    oversize: () => {},
    protocolError: () => {},
  });

  private constructor(readonly socket: Socket) {
    socket.on("data", (c: Buffer) => this.decoder.push(c));
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
  }

  static open(t: Teardown, path: string): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = connect({ path });
      s.once("error", reject);
      s.once("connect", () => {
        s.removeListener("error", reject);
        const c = new RawConn(s);
        t.teardown(() => s.destroy());
        resolve(c);
      });
    });
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Waits for the n-th frame (1-based count) or rejects when the connection closes first. */
  async frame(n = this.frames.length + 1, timeoutMs = 5000): Promise<RawFrame> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length < n) {
      if (this.closed) throw new Error(`connection closed after ${this.frames.length} frames`);
      if (Date.now() > deadline) throw new Error("timed out waiting for a frame");
      await this.changed(deadline - Date.now());
    }
    return this.frames[n - 1]!;
  }

  /** Resolves when the server closes the connection (rejects after timeoutMs). */
  async whenClosed(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error("connection still open");
      await this.changed(deadline - Date.now());
    }
  }

  /** The Response carried by a frame. */
  static response(f: RawFrame): Response {
    if (f.type !== MessageType.Response) throw new Error(`frame type ${f.type} is not a response`);
    return decodeResponse(f.data);
  }

  private changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, Math.max(1, ms));
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
