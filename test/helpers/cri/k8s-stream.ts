// The client side of the CRI streaming server's exec/attach as kubectl speaks it over a
// websocket (the `ws` library) with the subprotocol v4.channel.k8s.io: every binary message
// starts with a channel byte — 0 stdin, 1 stdout, 2 stderr, 3 error (a JSON metav1.Status when
// the command ends: "Success", or "Failure" with reason NonZeroExitCode and the code in
// details.causes), 4 resize. No SPDY: the streaming server (kubelet's, vendored by containerd)
// serves both.
import WebSocket from "ws";

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

/** Opens `url` (from GetExec/GetAttach) as a v4.channel.k8s.io websocket. */
export function openK8sStream(url: string, timeoutMs = 30_000): Promise<K8sStream> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, "ws"), [K8S_WS_PROTOCOL], {
      handshakeTimeout: timeoutMs,
      origin: "http://127.0.0.1",
    });
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (d) => {
        body += d;
      });
      res.on("end", () => reject(new Error(`${url}: HTTP ${res.statusCode} instead of an upgrade: ${body}`)));
    });
    ws.once("error", reject);
    ws.once("open", () => {
      if (ws.protocol !== K8S_WS_PROTOCOL) {
        ws.terminate();
        reject(new Error(`server chose subprotocol ${JSON.stringify(ws.protocol)}`));
        return;
      }
      resolve(session(ws));
    });
  });
}

function session(ws: WebSocket): K8sStream {
  const out: Record<number, Buffer[]> = { 1: [], 2: [], 3: [] };
  const text = (ch: number) => Buffer.concat(out[ch] ?? []).toString("utf8");
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
  ws.on("message", (data: Buffer) => {
    if (data.length === 0) return;
    const ch = data[0] ?? 0;
    if (data.length > 1) out[ch]?.push(Buffer.from(data.subarray(1)));
    for (const w of waiters) w();
  });
  const done = new Promise<StreamResult>((resolve) => {
    ws.on("error", () => {}); // a reset connection also ends in "close"
    ws.on("close", () => resolve(result()));
  });
  return {
    write(data: string) {
      ws.send(Buffer.concat([Buffer.from([0]), Buffer.from(data)]));
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
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      const t = setTimeout(() => ws.terminate(), 5000);
      const r = await done;
      clearTimeout(t);
      return r;
    },
    done,
  };
}
