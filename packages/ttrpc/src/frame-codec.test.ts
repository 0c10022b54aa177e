import fc from "fast-check";
import t from "tap";
import {
  encodeFrame,
  Flags,
  FrameDecoder,
  type FrameSink,
  HEADER_LENGTH,
  MAX_DATA_LENGTH,
  MessageType,
  writeHeader,
} from "./frame-codec.js";
import { Code, type TtrpcError } from "./status.js";

type Event =
  | { kind: "frame"; id: number; type: number; flags: number; data: number[] }
  | { kind: "oversize"; id: number; type: number; flags: number; length: number }
  | { kind: "error"; code: Code };

/** A decoder whose sink records everything, copying data (views into reads must stay valid). */
function recorder(max?: number): { d: FrameDecoder; events: Event[] } {
  const events: Event[] = [];
  const sink: FrameSink = {
    frame: (id, type, flags, data) => events.push({ kind: "frame", id, type, flags, data: [...data] }),
    oversize: (id, type, flags, length) => events.push({ kind: "oversize", id, type, flags, length }),
    protocolError: (err: TtrpcError) => events.push({ kind: "error", code: err.code }),
  };
  return { d: new FrameDecoder(sink, max), events };
}

const frameArb = fc.record({
  id: fc.integer({ min: 0, max: 0xffffffff }),
  type: fc.constantFrom(1, 2, 3),
  flags: fc.integer({ min: 0, max: 255 }),
  data: fc.uint8Array({ maxLength: 300 }),
});

/** Cuts `bytes` at the given (sorted, deduplicated) positions. */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(bytes.subarray(prev, p));
    prev = p;
  }
  out.push(bytes.subarray(prev));
  return out;
}

t.test("header layout: length BE, stream id BE, type, flags", async (t) => {
  const f = encodeFrame(0x01020304, MessageType.Data, Flags.RemoteClosed | Flags.NoData, Buffer.from("abc"));
  t.same([...f], [0, 0, 0, 3, 1, 2, 3, 4, 3, 5, 0x61, 0x62, 0x63]);
  const h = new Uint8Array(HEADER_LENGTH + 2);
  writeHeader(h, 2, 0xfffffffe, 0xffffffff, 2, 0x80);
  t.same([...h], [0, 0, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xff, 2, 0x80]);
  t.equal(MAX_DATA_LENGTH, 4 << 20);
  t.same(Flags, { RemoteClosed: 1, RemoteOpen: 2, NoData: 4 });
  t.same(MessageType, { Request: 1, Response: 2, Data: 3 });
});

t.test("many frames in one read, and one frame a byte at a time", async (t) => {
  const a = encodeFrame(1, 1, 0, Buffer.from("hello"));
  const b = encodeFrame(3, 3, 4);
  const c = encodeFrame(5, 2, 0, Buffer.alloc(1000, 7));
  const all = Buffer.concat([a, b, c]);
  const one = recorder();
  one.d.push(all);
  t.equal(one.events.length, 3);
  t.same(one.events[1], { kind: "frame", id: 3, type: 3, flags: 4, data: [] });
  const bytewise = recorder();
  for (let i = 0; i < all.length - 1; i++) bytewise.d.push(all.subarray(i, i + 1));
  t.equal(bytewise.events.length, 2, "the last frame waits for its last byte");
  bytewise.d.push(all.subarray(all.length - 1));
  t.same(bytewise.events, one.events);
  t.notOk(bytewise.d.midFrame);
});

t.test("a frame whole inside one read is handed out without a copy", async (t) => {
  const bytes = encodeFrame(1, 1, 0, Buffer.from("payload"));
  let seen: Buffer | undefined;
  const d = new FrameDecoder({
    frame: (_i, _t, _f, data) => {
      seen = data;
    },
    oversize: () => {},
    protocolError: () => {},
  });
  d.push(bytes);
  t.equal(seen?.buffer, bytes.buffer);
  t.equal(seen?.toString(), "payload");
});

t.test("property: any split of a valid byte stream decodes to the same frames", async (t) => {
  fc.assert(
    fc.property(
      fc.array(frameArb, { maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      (frames, cuts) => {
        const bytes = Buffer.concat(frames.map((f) => encodeFrame(f.id, f.type, f.flags, f.data)));
        const { d, events } = recorder();
        for (const piece of split(bytes, cuts)) d.push(piece);
        const expected = frames.map((f) => ({
          kind: "frame",
          id: f.id,
          type: f.type,
          flags: f.flags,
          data: [...f.data],
        }));
        return JSON.stringify(events) === JSON.stringify(expected) && !d.midFrame;
      },
    ),
    { numRuns: 500 },
  );
  t.pass("500 random streams and splits");
});

t.test("property: encode then decode round-trips every header field", async (t) => {
  fc.assert(
    fc.property(frameArb, (f) => {
      const { d, events } = recorder();
      d.push(encodeFrame(f.id, f.type, f.flags, f.data));
      const e = events[0];
      return (
        events.length === 1 &&
        e?.kind === "frame" &&
        e.id === f.id &&
        e.type === f.type &&
        e.flags === f.flags &&
        Buffer.from(e.data).equals(Buffer.from(f.data))
      );
    }),
    { numRuns: 1000 },
  );
  t.pass();
});

t.test(
  "property: random garbage never throws; it only ever yields frames, oversize reports or one error",
  async (t) => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 20 }),
        fc.nat({ max: 200 }),
        (chunks, max) => {
          const { d, events } = recorder(max);
          for (const c of chunks) d.push(Buffer.from(c));
          const errors = events.filter((e) => e.kind === "error");
          // At most one protocol error, and it is the last thing reported.
          if (errors.length > 1) return false;
          if (errors.length === 1 && events.at(-1)?.kind !== "error") return false;
          return events.every((e) => e.kind !== "frame" || e.data.length <= max);
        },
      ),
      { numRuns: 2000 },
    );
    t.pass();
  },
);

t.test(
  "oversized data is reported at once, discarded without buffering, and the stream stays in sync",
  async (t) => {
    const { d, events } = recorder();
    const length = MAX_DATA_LENGTH + 1;
    const header = Buffer.alloc(HEADER_LENGTH);
    writeHeader(header, 0, length, 7, MessageType.Request, 0);
    d.push(header);
    t.same(events, [{ kind: "oversize", id: 7, type: 1, flags: 0, length }]);
    // Feed the body in 64 KiB pieces: nothing is held.
    const piece = Buffer.alloc(64 * 1024, 0xee);
    let left = length;
    while (left > 0) {
      const n = Math.min(left, piece.length);
      d.push(piece.subarray(0, n));
      left -= n;
      t.equal(d.buffered, 0);
      if (left > 0) t.ok(d.midFrame);
    }
    t.notOk(d.midFrame);
    d.push(encodeFrame(9, MessageType.Request, 0, Buffer.from("ok")));
    t.equal(events.length, 2);
    t.same(events[1], { kind: "frame", id: 9, type: 1, flags: 0, data: [...Buffer.from("ok")] });
  },
);

t.test("exactly MAX_DATA_LENGTH is accepted", async (t) => {
  const { d, events } = recorder();
  const f = encodeFrame(1, MessageType.Data, 0, Buffer.alloc(MAX_DATA_LENGTH, 1));
  d.push(f.subarray(0, 100));
  d.push(f.subarray(100));
  t.equal(events.length, 1);
  t.equal(events[0]?.kind, "frame");
});

t.test("an unknown message type is a protocol error and stops the decoder", async (t) => {
  const { d, events } = recorder();
  const bad = encodeFrame(1, 9, 0, Buffer.from("x"));
  d.push(Buffer.concat([encodeFrame(1, 1, 0), bad, encodeFrame(3, 1, 0)]));
  t.same(events, [
    { kind: "frame", id: 1, type: 1, flags: 0, data: [] },
    { kind: "error", code: Code.InvalidArgument },
  ]);
  d.push(encodeFrame(5, 1, 0));
  t.equal(events.length, 2, "input after the error is ignored");
});

t.test("stop() from inside a callback ends decoding of the current read", async (t) => {
  let n = 0;
  const d: FrameDecoder = new FrameDecoder({
    frame: () => {
      n++;
      d.stop();
    },
    oversize: () => {},
    protocolError: () => {},
  });
  d.push(Buffer.concat([encodeFrame(1, 1, 0), encodeFrame(3, 1, 0)]));
  t.equal(n, 1);
});
