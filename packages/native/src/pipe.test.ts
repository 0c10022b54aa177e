import { closeSync, readSync, writeSync } from "node:fs";
import t from "tap";
import { makePipe } from "./pipe.js";

t.test("makePipe returns a working pipe", async (t) => {
  const [r, w] = makePipe();
  t.ok(r > 2 && w > 2 && r !== w);
  writeSync(w, "ping");
  closeSync(w);
  const buf = Buffer.alloc(16);
  t.equal(buf.toString("utf8", 0, readSync(r, buf)), "ping");
  t.equal(readSync(r, buf), 0, "EOF once the write end is closed");
  closeSync(r);
});
