import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import t from "tap";
import { Channel, STREAM_FULL_TIMEOUT_MS } from "./channel.js";
import { encodeFrame, MessageType } from "./frame-codec.js";
import { MessageQueue } from "./message-queue.js";
import { sleep, type Teardown, tempDir } from "./test-support.js";

/** A connected pair of unix sockets. */
async function socketPair(t: Teardown): Promise<[Socket, Socket]> {
  const path = join(tempDir(t), "pair.sock");
  const accepted = new Promise<Socket>((resolve) => {
    const srv = createServer((s) => {
      srv.close();
      resolve(s);
    });
    srv.listen(path);
  });
  const { connectUnix } = await import("./unix.js");
  await sleep(5);
  const a = await connectUnix(path);
  const b = await accepted;
  t.teardown(() => {
    a.destroy();
    b.destroy();
  });
  return [a, b];
}

function sinkOf(frames: number[]) {
  return {
    frame: (id: number) => frames.push(id),
    oversize: () => {},
    protocolError: () => {},
  };
}

t.test("frames flow both ways; nothing is read before start()", async (t) => {
  const [a, b] = await socketPair(t);
  const gotA: number[] = [];
  const gotB: number[] = [];
  const ca = new Channel(a, sinkOf(gotA), () => {});
  const cb = new Channel(b, sinkOf(gotB), () => {});
  ca.start();
  ca.writer.frame(1, MessageType.Request, 0, Buffer.from("x"));
  await sleep(20);
  t.same(gotB, [], "b not started");
  cb.start();
  await sleep(20);
  t.same(gotB, [1]);
  cb.writer.frame(1, MessageType.Response, 0);
  await sleep(20);
  t.same(gotA, [1]);
});

t.test("the peer's half-close closes the channel and reports once", async (t) => {
  const [a, b] = await socketPair(t);
  let closes = 0;
  const ca = new Channel(a, sinkOf([]), () => closes++);
  ca.start();
  b.end();
  await sleep(30);
  t.equal(closes, 1);
  t.ok(ca.closed);
});

t.test("a full queue pauses reading; a stuck one is given up after the timeout", async (t) => {
  const [a, b] = await socketPair(t);
  const got: number[] = [];
  const ca = new Channel(a, sinkOf(got), () => {});
  ca.start();
  let stuck = false;
  const q = new MessageQueue<number>(
    ca.queueHooks(() => {
      stuck = true;
      q.fail(new Error("stuck"));
    }),
    2,
  );
  q.push(1);
  q.push(2); // high: reading pauses
  t.ok(a.isPaused());
  b.write(encodeFrame(1, MessageType.Data, 0));
  await sleep(30);
  t.same(got, [], "nothing read while paused");
  await q.next();
  await q.next(); // drained below the mark: reading resumes
  await sleep(30);
  t.same(got, [1]);
  q.push(3);
  q.push(4);
  t.ok(a.isPaused());
  await sleep(STREAM_FULL_TIMEOUT_MS + 100);
  t.ok(stuck, "stuck consumer timed out");
  t.notOk(a.isPaused(), "reading resumed");
});
