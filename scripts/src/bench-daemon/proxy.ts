// A timing proxy between tsctl and tsruncd: a unix socket that forwards bytes both ways unchanged
// and decodes the ttrpc frames on the side, so each call (service, method, stream id) gets the
// time its request passed and the time its response came back, on the bench's clock. Nothing in
// tsctl or tsruncd is changed or instrumented; the proxy adds a hop (tens of µs), so it is used
// only for the breakdown runs, never for the timed comparison.

import { rmSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { decodeRequest, decodeResponse, FrameDecoder, type FrameSink, MessageType } from "@tsrunc/ttrpc";
import { now } from "./clock.js";

export interface CallTiming {
  /** e.g. "containerd.services.tasks.v1.Tasks/Create" */
  name: string;
  streamId: number;
  /** Epoch ms (fractional) when the request frame passed the proxy. */
  sentAt: number;
  /** When the response frame passed, if it did. */
  answeredAt?: number;
  /** The response's status code (0 OK). */
  code?: number;
}

export interface ConnTiming {
  acceptedAt: number;
  closedAt?: number;
  calls: CallTiming[];
}

/** A sink that records requests (client → server direction) or responses (server → client). */
function sink(conn: ConnTiming, open: Map<number, CallTiming>, side: "requests" | "responses"): FrameSink {
  return {
    frame(streamId, type, _flags, data) {
      const at = now();
      if (side === "requests" && type === MessageType.Request) {
        let name = "?";
        try {
          const r = decodeRequest(data);
          name = `${r.service}/${r.method}`;
        } catch {
          // an undecodable request: recorded by its stream id alone
        }
        const call: CallTiming = { name, streamId, sentAt: at };
        open.set(streamId, call);
        conn.calls.push(call);
      } else if (side === "responses" && type === MessageType.Response) {
        const call = open.get(streamId);
        if (!call) return;
        open.delete(streamId);
        call.answeredAt = at;
        try {
          call.code = decodeResponse(data).status.code;
        } catch {
          call.code = -1;
        }
      }
    },
    oversize() {},
    protocolError() {},
  };
}

export class TimingProxy {
  #conns: ConnTiming[] = [];
  readonly #sockets = new Set<Socket>();

  private constructor(
    readonly path: string,
    private readonly server: Server,
  ) {}

  /** Listens on `path` and forwards every connection to the unix socket `upstream`. */
  static async listen(path: string, upstream: string): Promise<TimingProxy> {
    rmSync(path, { force: true });
    let proxy: TimingProxy | undefined;
    const server = createServer((client) => proxy?.accept(client, upstream));
    proxy = new TimingProxy(path, server);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => resolve());
    });
    return proxy;
  }

  private accept(client: Socket, upstream: string): void {
    const conn: ConnTiming = { acceptedAt: now(), calls: [] };
    this.#conns.push(conn);
    // Writes before the connection is up are queued by the socket itself.
    const up = connect(upstream);
    const open = new Map<number, CallTiming>();
    const reqs = new FrameDecoder(sink(conn, open, "requests"));
    const resps = new FrameDecoder(sink(conn, open, "responses"));
    this.#sockets.add(client);
    this.#sockets.add(up);
    client.on("data", (chunk) => {
      reqs.push(chunk);
      up.write(chunk);
    });
    up.on("data", (chunk) => {
      resps.push(chunk);
      client.write(chunk);
    });
    const done = () => {
      conn.closedAt ??= now();
      client.destroy();
      up.destroy();
      this.#sockets.delete(client);
      this.#sockets.delete(up);
    };
    for (const s of [client, up]) {
      s.on("end", done);
      s.on("close", done);
      s.on("error", done);
    }
  }

  /** The connections seen since the last take(), and forgets them. */
  take(): ConnTiming[] {
    const out = this.#conns;
    this.#conns = [];
    return out;
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.path, { force: true });
  }
}
