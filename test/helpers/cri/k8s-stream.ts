// The client side of the CRI streaming server's exec/attach as kubectl speaks it over a
// websocket (RFC 6455) with the subprotocol v4.channel.k8s.io: every binary message starts with
// a channel byte — 0 stdin, 1 stdout, 2 stderr, 3 error (a JSON metav1.Status when the command
// ends: "Success", or "Failure" with reason NonZeroExitCode and the code in details.causes),
// 4 resize. No SPDY: the streaming server (kubelet's, vendored by containerd) serves both.
import { randomBytes } from "node:crypto";
import * as http from "node:http";
import type { Duplex } from "node:stream";

export const K8S_WS_PROTOCOL = "v4.channel.k8s.io";

export interface StreamResult {
  stdout: string;
  stderr: string;
  /** The exit code from the error channel's Status (0 on Success), or undefined if none came. */
  exitCode: number | undefined;
  /** The error channel's raw text. */
  status: string;
}

export interface K8sStream {
  /** Writes `data` to the process's stdin (channel 0). */
  write(data: string): void;
  /** Resolves once `text` has been seen on stdout. */
  waitStdout(text: string, timeoutMs?: number): Promise<void>;
  /** Closes the connection (kubectl's detach); resolves with what came. */
  close(): Promise<StreamResult>;
  /** Resolves when the server closes the connection (the command ended). */
  readonly done: Promise<StreamResult>;
}

function frame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const len = payload.length;
  const head =
    len < 126
      ? Buffer.from([0x80 | opcode, 0x80 | len])
      : Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 0xff]);
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = (payload[i] ?? 0) ^ (mask[i % 4] ?? 0);
  return Buffer.concat([head, mask, body]);
}

/** Opens `url` (from GetExec/GetAttach) as a v4.channel.k8s.io websocket. */
export function openK8sStream(url: string, timeoutMs = 30_000): Promise<K8sStream> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: "GET",
      headers: {
        Connection: "Upgrade",
        Upgrade: "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": randomBytes(16).toString("base64"),
        "Sec-WebSocket-Protocol": K8S_WS_PROTOCOL,
        Origin: "http://127.0.0.1",
      },
      timeout: timeoutMs,
    });
    req.on("timeout", () => req.destroy(new Error(`no websocket upgrade from ${url} in ${timeoutMs} ms`)));
    req.on("error", reject);
    req.on("response", (res) => {
      let body = "";
      res.on("data", (d) => {
        body += d;
      });
      res.on("end", () => reject(new Error(`${url}: HTTP ${res.statusCode} instead of an upgrade: ${body}`)));
    });
    req.on("upgrade", (res, socket: Duplex, head: Buffer) => {
      const proto = res.headers["sec-websocket-protocol"];
      if (proto !== K8S_WS_PROTOCOL) {
        socket.destroy();
        reject(new Error(`server chose subprotocol ${String(proto)}`));
        return;
      }
      resolve(session(socket, head));
    });
    req.end();
  });
}

function session(socket: Duplex, head: Buffer): K8sStream {
  const out: Record<number, Buffer[]> = { 1: [], 2: [], 3: [] };
  const text = (ch: number) => Buffer.concat(out[ch] ?? []).toString("utf8");
  let pending = head;
  let fragments: Buffer[] = [];
  const waiters = new Set<() => void>();
  const result = (): StreamResult => {
    const status = text(3);
    let exitCode: number | undefined;
    if (status) {
      try {
        const s = JSON.parse(status);
        if (s.status === "Success") exitCode = 0;
        const cause = s.details?.causes?.find((c: { reason?: string }) => c.reason === "ExitCode");
        if (cause) exitCode = Number(cause.message);
      } catch {
        // not JSON: left in status
      }
    }
    return { stdout: text(1), stderr: text(2), exitCode, status };
  };
  const onMessage = (msg: Buffer) => {
    if (msg.length === 0) return;
    const ch = msg[0] ?? 0;
    if (msg.length > 1) out[ch]?.push(msg.subarray(1));
    for (const w of waiters) w();
  };
  const parse = () => {
    for (;;) {
      if (pending.length < 2) return;
      const b0 = pending[0] ?? 0;
      const b1 = pending[1] ?? 0;
      let len = b1 & 0x7f;
      let at = 2;
      if (len === 126) {
        if (pending.length < 4) return;
        len = pending.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (pending.length < 10) return;
        len = Number(pending.readBigUInt64BE(2));
        at = 10;
      }
      const masked = (b1 & 0x80) !== 0;
      const maskAt = at;
      if (masked) at += 4;
      if (pending.length < at + len) return;
      let payload = pending.subarray(at, at + len);
      if (masked) {
        const m = pending.subarray(maskAt, maskAt + 4);
        payload = Buffer.from(payload.map((x, i) => x ^ (m[i % 4] ?? 0)));
      }
      pending = pending.subarray(at + len);
      const opcode = b0 & 0x0f;
      if (opcode === 0x8) {
        socket.end(frame(0x8, Buffer.alloc(0)));
        return;
      }
      if (opcode === 0x9) {
        socket.write(frame(0xa, payload));
        continue;
      }
      if (opcode === 0x0 || opcode === 0x1 || opcode === 0x2) {
        fragments.push(Buffer.from(payload));
        if (b0 & 0x80) {
          const msg = Buffer.concat(fragments);
          fragments = [];
          // base64 protocols send text; v4.channel.k8s.io sends binary, channel byte first.
          onMessage(msg);
        }
      }
    }
  };
  socket.on("data", (d: Buffer) => {
    pending = Buffer.concat([pending, d]);
    parse();
  });
  const done = new Promise<StreamResult>((resolve) => {
    const finish = () => resolve(result());
    socket.on("close", finish);
    socket.on("end", finish);
    socket.on("error", finish);
  });
  parse();
  return {
    write(data: string) {
      socket.write(frame(0x2, Buffer.concat([Buffer.from([0]), Buffer.from(data)])));
    },
    waitStdout(want: string, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (text(1).includes(want)) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve();
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `no ${JSON.stringify(want)} on stdout in ${timeoutMs} ms (got ${JSON.stringify(text(1))})`,
            ),
          );
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async close() {
      if (!socket.destroyed) socket.end(frame(0x8, Buffer.from([0x03, 0xe8])));
      const t = setTimeout(() => socket.destroy(), 5000);
      const r = await done;
      clearTimeout(t);
      return r;
    },
    done,
  };
}
