// The ttrpc wire as the fuzz tests see it: building frames byte by byte (any declared length,
// any type and flags, ids of any value), an incremental reference parser written from the wire
// facts alone (it shares no code with packages/ttrpc's FrameDecoder, so the two can be compared),
// and a raw connection that writes arbitrary bytes in chosen chunks and collects what comes back.
import { connect, type Socket } from "node:net";

export const HEADER = 10;
/** Data above this is refused with ResourceExhausted (Go ttrpc's messageLengthMax). */
export const MAX_DATA = 4 << 20;

export const T_REQUEST = 1;
export const T_RESPONSE = 2;
export const T_DATA = 3;

export const F_REMOTE_CLOSED = 0x1;
export const F_REMOTE_OPEN = 0x2;
export const F_NO_DATA = 0x4;

/** A frame header with any declared length, then `data` (which may be shorter or longer). */
export function rawFrame(
  id: number,
  type: number,
  flags: number,
  data: Uint8Array = new Uint8Array(0),
  declared = data.length,
): Buffer {
  const out = Buffer.alloc(HEADER + data.length);
  out.writeUInt32BE(declared >>> 0, 0);
  out.writeUInt32BE(id >>> 0, 4);
  out[8] = type & 0xff;
  out[9] = flags & 0xff;
  out.set(data, HEADER);
  return out;
}

export type WireEvent =
  | { kind: "frame"; id: number; type: number; flags: number; data: Buffer }
  /** A header whose length exceeds MAX_DATA: the body is skipped, not buffered. */
  | { kind: "oversize"; id: number; type: number; flags: number; length: number }
  /** A header with a type other than 1, 2, 3: nothing after it is a frame. */
  | { kind: "badtype"; id: number; type: number; flags: number; length: number };

/**
 * Incremental reference parser. After a `badtype` event it swallows all further input. `tail`
 * says where the stream stands when the input ends: between frames, inside a header, inside a
 * body (with `need` bytes missing) or inside a skipped oversized body.
 */
export class RefParser {
  private pending = Buffer.alloc(0);
  private skip = 0;
  private dead = false;

  push(chunk: Uint8Array, out: WireEvent[] = []): WireEvent[] {
    let buf = Buffer.concat([this.pending, chunk]);
    for (;;) {
      if (this.dead) {
        this.pending = Buffer.alloc(0);
        return out;
      }
      if (this.skip > 0) {
        const n = Math.min(this.skip, buf.length);
        this.skip -= n;
        buf = buf.subarray(n);
        if (this.skip > 0) break;
        continue;
      }
      if (buf.length < HEADER) break;
      const length = buf.readUInt32BE(0);
      const id = buf.readUInt32BE(4);
      const type = buf[8]!;
      const flags = buf[9]!;
      if (type !== T_REQUEST && type !== T_RESPONSE && type !== T_DATA) {
        out.push({ kind: "badtype", id, type, flags, length });
        this.dead = true;
        continue;
      }
      if (length > MAX_DATA) {
        out.push({ kind: "oversize", id, type, flags, length });
        buf = buf.subarray(HEADER);
        this.skip = length;
        continue;
      }
      if (buf.length < HEADER + length) break;
      out.push({ kind: "frame", id, type, flags, data: Buffer.from(buf.subarray(HEADER, HEADER + length)) });
      buf = buf.subarray(HEADER + length);
    }
    this.pending = Buffer.from(buf);
    return out;
  }

  get tail(): { state: "clean" | "header" | "body" | "skip" | "dead"; need: number } {
    if (this.dead) return { state: "dead", need: 0 };
    if (this.skip > 0) return { state: "skip", need: this.skip };
    if (this.pending.length === 0) return { state: "clean", need: 0 };
    if (this.pending.length < HEADER) return { state: "header", need: HEADER - this.pending.length };
    return { state: "body", need: this.pending.readUInt32BE(0) + HEADER - this.pending.length };
  }
}

export function parseAll(bytes: Uint8Array): { events: WireEvent[]; tail: RefParser["tail"] } {
  const p = new RefParser();
  const events = p.push(bytes);
  return { events, tail: p.tail };
}

export type Frame = Extract<WireEvent, { kind: "frame" }>;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const tick = () => new Promise<void>((r) => setImmediate(r));

/** A frame-level client connection: arbitrary bytes out, frames in, and whether it closed. */
export class RawConn {
  readonly frames: Frame[] = [];
  /** Bytes the peer sent that are not frames (a bad type): the server must never do that. */
  readonly garbage: WireEvent[] = [];
  closed = false;
  private readonly parser = new RefParser();
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: Socket) {
    socket.on("data", (c: Buffer) => {
      for (const e of this.parser.push(c)) {
        if (e.kind === "frame") this.frames.push(e);
        else this.garbage.push(e);
      }
      this.wake();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
  }

  static open(path: string, timeoutMs = 5000): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = connect({ path });
      const timer = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect ${path}: timed out`));
      }, timeoutMs);
      s.once("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      s.once("connect", () => {
        clearTimeout(timer);
        s.removeAllListeners("error");
        resolve(new RawConn(s));
      });
    });
  }

  /** Writes `chunks` one after another, letting the event loop turn between them. */
  async send(chunks: readonly Uint8Array[], gapMs = 0): Promise<void> {
    for (const [i, c] of chunks.entries()) {
      if (this.closed) return;
      if (c.length > 0) this.socket.write(c);
      if (i < chunks.length - 1) await (gapMs > 0 ? sleep(gapMs) : tick());
    }
  }

  /** Resolves once `cond()` holds or the connection has closed; false on timeout. */
  async until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (this.closed) return cond();
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 50));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return true;
  }

  /** Waits until the peer closed the connection; false on timeout. */
  whenClosed(timeoutMs: number): Promise<boolean> {
    return this.until(() => this.closed, timeoutMs).then(() => this.closed);
  }

  framesOn(id: number): Frame[] {
    return this.frames.filter((f) => f.id === id);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/** Splits `bytes` at the given cut points (positions, any order, duplicates ignored). */
export function splitAt(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => Math.max(0, Math.min(bytes.length, c))))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let at = 0;
  for (const p of points) {
    if (p > at) out.push(bytes.subarray(at, p));
    at = Math.max(at, p);
  }
  if (at < bytes.length || out.length === 0) out.push(bytes.subarray(at));
  return out;
}
