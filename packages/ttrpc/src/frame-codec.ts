// The ttrpc frame: a 10-byte header (data length uint32 BE, stream id uint32 BE, message type
// uint8, flags uint8) followed by the data. The decoder here is incremental: a socket hands us
// arbitrary slices of the byte stream, so one read may hold many frames or a fraction of one.
//
// Hot-path choices: a frame that lies whole inside one read is handed out as a view of that read
// (no copy); a frame split across reads is assembled once into a buffer of its exact size (one
// copy, never a growing Buffer.concat); an oversized frame's body is counted off and dropped,
// never buffered, so a peer cannot make us hold more than MAX_DATA_LENGTH per connection.

import { Code, TtrpcError } from "./status.js";

export const HEADER_LENGTH = 10;
/** Go ttrpc's messageLengthMax: data above this is refused with ResourceExhausted. */
export const MAX_DATA_LENGTH = 4 << 20;

export const MessageType = {
  Request: 1,
  Response: 2,
  Data: 3,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/**
 * Flags are read from the receiver's point of view: the sender sets "remote closed" to say it
 * will send nothing more. Request: RemoteClosed | RemoteOpen (none means unary). Data:
 * RemoteClosed | NoData.
 */
export const Flags = {
  RemoteClosed: 0x1,
  RemoteOpen: 0x2,
  NoData: 0x4,
} as const;

const EMPTY = Buffer.alloc(0);

/** Writes a frame header at `offset` of `buf`. */
export function writeHeader(
  buf: Uint8Array,
  offset: number,
  length: number,
  streamId: number,
  type: number,
  flags: number,
): void {
  // Byte arithmetic rather than DataView/writeUInt32BE: it is the fastest on V8 for 10 bytes and
  // works on any Uint8Array.
  buf[offset] = length >>> 24;
  buf[offset + 1] = length >>> 16;
  buf[offset + 2] = length >>> 8;
  buf[offset + 3] = length;
  buf[offset + 4] = streamId >>> 24;
  buf[offset + 5] = streamId >>> 16;
  buf[offset + 6] = streamId >>> 8;
  buf[offset + 7] = streamId;
  buf[offset + 8] = type;
  buf[offset + 9] = flags;
}

/** One whole frame in a fresh buffer (tests, raw tools; the writers build frames in place). */
export function encodeFrame(streamId: number, type: number, flags: number, data: Uint8Array = EMPTY): Buffer {
  const out = Buffer.allocUnsafe(HEADER_LENGTH + data.length);
  writeHeader(out, 0, data.length, streamId, type, flags);
  out.set(data, HEADER_LENGTH);
  return out;
}

/** Where decoded frames go. Callbacks run synchronously inside FrameDecoder.push(). */
export interface FrameSink {
  /** A complete frame; `data` may be a view into a read buffer, valid as long as it is referenced. */
  frame(streamId: number, type: MessageType, flags: number, data: Buffer): void;
  /**
   * A frame whose data exceeds the limit. Its body is discarded as it arrives; the stream is
   * still in sync, so the receiver answers ResourceExhausted on `streamId` and carries on.
   */
  oversize(streamId: number, type: MessageType, flags: number, length: number): void;
  /** The byte stream cannot be a ttrpc stream; the decoder has stopped and ignores further input. */
  protocolError(err: TtrpcError): void;
}

enum State {
  Header,
  Body,
  Discard,
  Stopped,
}

export class FrameDecoder {
  private state = State.Header;
  // A header split across reads is gathered here.
  private readonly hdr = Buffer.allocUnsafe(HEADER_LENGTH);
  private hdrFill = 0;
  // The frame being assembled across reads (State.Body) or being dropped (State.Discard).
  private streamId = 0;
  private type: MessageType = MessageType.Request;
  private flags = 0;
  private body: Buffer = EMPTY;
  private bodyFill = 0;
  private discardLeft = 0;

  constructor(
    private readonly sink: FrameSink,
    private readonly maxDataLength = MAX_DATA_LENGTH,
  ) {}

  /** Bytes received but not yet handed out as part of a frame (partial header or body). */
  get buffered(): number {
    return this.state === State.Body ? this.bodyFill : this.hdrFill;
  }

  /** True while the input ends in the middle of a frame. */
  get midFrame(): boolean {
    return this.state === State.Body || this.state === State.Discard || this.hdrFill > 0;
  }

  /** Ignore all further input (the connection is being closed). */
  stop(): void {
    this.state = State.Stopped;
    this.body = EMPTY;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      switch (this.state) {
        case State.Stopped:
          return;
        case State.Header: {
          let h: Buffer;
          let at: number;
          if (this.hdrFill === 0 && end - pos >= HEADER_LENGTH) {
            // Fast path: the header lies whole in this read.
            h = chunk;
            at = pos;
            pos += HEADER_LENGTH;
          } else {
            const n = Math.min(HEADER_LENGTH - this.hdrFill, end - pos);
            chunk.copy(this.hdr, this.hdrFill, pos, pos + n);
            this.hdrFill += n;
            pos += n;
            if (this.hdrFill < HEADER_LENGTH) return;
            this.hdrFill = 0;
            h = this.hdr;
            at = 0;
          }
          const length = ((h[at]! << 24) | (h[at + 1]! << 16) | (h[at + 2]! << 8) | h[at + 3]!) >>> 0;
          const streamId = ((h[at + 4]! << 24) | (h[at + 5]! << 16) | (h[at + 6]! << 8) | h[at + 7]!) >>> 0;
          const type = h[at + 8]!;
          const flags = h[at + 9]!;
          if (type !== MessageType.Request && type !== MessageType.Response && type !== MessageType.Data) {
            this.stop();
            this.sink.protocolError(
              new TtrpcError(
                Code.InvalidArgument,
                `ttrpc: unknown message type ${type} on stream ${streamId}`,
              ),
            );
            return;
          }
          if (length > this.maxDataLength) {
            this.state = State.Discard;
            this.discardLeft = length;
            this.sink.oversize(streamId, type, flags, length);
            continue;
          }
          if (end - pos >= length) {
            // Fast path: the whole body is in this read; hand out a view, no copy.
            const data = length === 0 ? EMPTY : chunk.subarray(pos, pos + length);
            pos += length;
            this.sink.frame(streamId, type, flags, data);
            continue;
          }
          // The body continues in later reads: assemble it once, at its final size.
          this.state = State.Body;
          this.streamId = streamId;
          this.type = type;
          this.flags = flags;
          this.body = Buffer.allocUnsafe(length);
          this.bodyFill = 0;
          continue;
        }
        case State.Body: {
          const n = Math.min(this.body.length - this.bodyFill, end - pos);
          chunk.copy(this.body, this.bodyFill, pos, pos + n);
          this.bodyFill += n;
          pos += n;
          if (this.bodyFill < this.body.length) return;
          const data = this.body;
          this.body = EMPTY;
          this.state = State.Header;
          this.sink.frame(this.streamId, this.type, this.flags, data);
          continue;
        }
        case State.Discard: {
          const n = Math.min(this.discardLeft, end - pos);
          this.discardLeft -= n;
          pos += n;
          if (this.discardLeft === 0) this.state = State.Header;
          continue;
        }
      }
    }
  }
}
