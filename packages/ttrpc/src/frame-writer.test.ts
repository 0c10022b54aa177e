import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import t from "tap";
import { encodeFrame, FrameDecoder, MessageType } from "./frame-codec.js";
import { FrameWriter } from "./frame-writer.js";

/** A stand-in socket that records write calls (and how they were corked). */
class FakeSocket extends EventEmitter {
  writes: Buffer[][] = [];
  private corked: Buffer[] | null = null;
  destroyed = false;
  writableEnded = false;
  writableNeedDrain = false;
  write(b: Uint8Array): boolean {
    const buf = Buffer.from(b);
    if (this.corked) this.corked.push(buf);
    else this.writes.push([buf]);
    return !this.writableNeedDrain;
  }
  cork(): void {
    this.corked = [];
  }
  uncork(): void {
    if (this.corked) this.writes.push(this.corked);
    this.corked = null;
  }
  bytes(): Buffer {
    return Buffer.concat(this.writes.flat());
  }
}

const nextTurn = () => new Promise((r) => setImmediate(r));

t.test("frames queued in one turn leave in one write, byte-exact", async (t) => {
  const s = new FakeSocket();
  const w = new FrameWriter(s as unknown as Socket);
  const expected: Buffer[] = [];
  for (let i = 0; i < 200; i++) {
    const data = Buffer.from(`message ${i}`);
    w.frame(2 * i + 1, MessageType.Request, 0, data);
    expected.push(encodeFrame(2 * i + 1, MessageType.Request, 0, data));
  }
  t.equal(s.writes.length, 0, "nothing written before the turn ends");
  await nextTurn();
  t.equal(s.writes.length, 1);
  t.same(s.bytes(), Buffer.concat(expected));
});

t.test("large payloads are written by reference in the same corked batch", async (t) => {
  const s = new FakeSocket();
  const w = new FrameWriter(s as unknown as Socket);
  const big = Buffer.alloc(50_000, 0xab);
  w.frame(1, MessageType.Data, 0, Buffer.from("small"));
  w.frame(3, MessageType.Data, 0, big);
  w.frame(5, MessageType.Data, 4);
  await nextTurn();
  t.equal(s.writes.length, 1, "one corked batch");
  t.equal(s.writes[0]?.length, 3, "small frames + header | big payload | next header");
  const frames: number[] = [];
  new FrameDecoder({
    frame: (id) => frames.push(id),
    oversize: () => {},
    protocolError: () => t.fail(),
  }).push(s.bytes());
  t.same(frames, [1, 3, 5]);
});

t.test("a producer that never yields still reaches the socket", async (t) => {
  const s = new FakeSocket();
  const w = new FrameWriter(s as unknown as Socket);
  const payload = Buffer.alloc(4096);
  for (let i = 0; i < 100; i++) w.frame(1, MessageType.Data, 0, payload);
  t.ok(s.writes.length > 0, "flushed synchronously past the threshold");
});

t.test("blocks are never rewritten after being handed to the socket", async (t) => {
  const s = new FakeSocket();
  const w = new FrameWriter(s as unknown as Socket);
  const seen: Uint8Array[] = [];
  const orig = s.write.bind(s);
  s.write = (b: Uint8Array) => {
    seen.push(b); // keep the very view the writer passed
    return orig(b);
  };
  const copies: Buffer[] = [];
  for (let turn = 0; turn < 50; turn++) {
    w.frame(1, MessageType.Data, 0, Buffer.alloc(3000, turn));
    await nextTurn();
    copies.push(Buffer.from(seen.at(-1)!));
  }
  const changed = seen.filter((b, i) => !Buffer.from(b).equals(copies[i]!));
  t.equal(changed.length, 0);
});

t.test("drained() waits for 'drain' and gives up on 'close'", async (t) => {
  const s = new FakeSocket();
  const w = new FrameWriter(s as unknown as Socket);
  t.equal(w.needsDrain, false);
  await w.drained();
  s.writableNeedDrain = true;
  t.equal(w.needsDrain, true);
  let done = false;
  const p = w.drained().then(() => {
    done = true;
  });
  await nextTurn();
  t.notOk(done);
  s.writableNeedDrain = false;
  s.emit("drain");
  await p;
  t.ok(done);
  s.writableNeedDrain = true;
  const q = w.drained();
  s.emit("close");
  await q;
  w.frame(1, 1, 0);
  await nextTurn();
  t.pass("writes after close are dropped");
});

t.test("writers share one copy block: interleaved frames of two writers stay byte-exact", async (t) => {
  const a = new FakeSocket();
  const b = new FakeSocket();
  const wa = new FrameWriter(a as unknown as Socket);
  const wb = new FrameWriter(b as unknown as Socket);
  const ea: Buffer[] = [];
  const eb: Buffer[] = [];
  // Enough bytes to fill several shared blocks, alternating writers on every frame, with a
  // large (by-reference) payload now and then.
  for (let i = 0; i < 3000; i++) {
    const [w, e] = i % 2 === 0 ? [wa, ea] : [wb, eb];
    const data = Buffer.alloc(i % 97 === 0 ? 9000 : (i * 37) % 300, i & 0xff);
    w.frame(2 * i + 1, MessageType.Data, 0, data);
    e.push(encodeFrame(2 * i + 1, MessageType.Data, 0, data));
    if (i % 500 === 0) await nextTurn(); // some flushes mid-way
  }
  await nextTurn();
  t.ok(a.bytes().equals(Buffer.concat(ea)), "writer A's bytes");
  t.ok(b.bytes().equals(Buffer.concat(eb)), "writer B's bytes");
});

t.test("a writer's consecutive frames in the shared block still leave as one piece", async (t) => {
  const s = new FakeSocket();
  const w = new FrameWriter(s as unknown as Socket);
  for (let i = 0; i < 50; i++) w.frame(2 * i + 1, MessageType.Request, 0, Buffer.from("x"));
  await nextTurn();
  t.equal(s.writes.length, 1);
  // One piece, or two if the shared block filled up just then.
  t.ok(s.writes[0]!.length <= 2, "one run in the block, not a piece per frame");
});
