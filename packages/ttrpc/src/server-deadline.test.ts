import t from "tap";
import { encodeFrame, MessageType } from "./frame-codec.js";
import { encodeRequest } from "./messages.js";
import { Code } from "./status.js";
import { RawConn, startServer, TestService } from "./test-support.js";

// Found by test/fuzz (dispatcher campaign): a client-streaming or bidi request whose deadline had
// already passed on arrival (timeout_nano of 1) aborted its call before the request stream
// existed, so the stream was never failed: no DeadlineExceeded was sent, and the handler waited
// on its input for ever, even after the connection closed.
for (const method of ["Sum", "Chat"] as const) {
  t.test(`${method}: a deadline already past ends the handler and answers DeadlineExceeded`, async (t) => {
    let running = 0;
    const consume = async (reqs: AsyncIterable<unknown>) => {
      running++;
      try {
        for await (const _ of reqs);
      } finally {
        running--;
      }
    };
    const { path } = await startServer(t, {
      sum: async (reqs) => {
        await consume(reqs);
        return {};
      },
      // A bidi handler that answers nothing: it only drains what the client sends.
      // biome-ignore lint/correctness/useYield: the point is a stream with no messages
      chat: async function* (reqs) {
        await consume(reqs);
      },
    });
    const c = await RawConn.open(t, path);
    c.write(
      encodeFrame(
        1,
        MessageType.Request,
        0,
        encodeRequest({ service: TestService.name, method, timeoutNano: 1 }),
      ),
    );
    const f = await c.frame(1, 2000);
    t.equal(f.id, 1);
    t.equal(RawConn.response(f).status.code, Code.DeadlineExceeded, "answered DeadlineExceeded");
    t.equal(running, 0, "the handler ended");
  });
}
