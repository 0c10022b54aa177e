// Fifo sets with real fifos: layout, modes, cleanup, and copying with EOF at the right moment.

import {
  closeSync,
  constants,
  existsSync,
  mkdtempSync,
  openSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { PassThrough, Writable } from "node:stream";
import { Code } from "@tsrunc/ttrpc";
import t from "tap";
import { createFifoSet, FifoIO, ownedFifoDir, removeFifoSet, sweepFifoDirs } from "./io.js";

function tempRoot(t: { teardown(fn: () => unknown): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "tsctl-fifo-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "fifo");
}

class Collect extends Writable {
  text = "";
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.text += chunk.toString();
    cb();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test("layout: <root>/<ns>/<id>-XXXXXX/<pid>-stdin|stdout|stderr, dirs 0700, fifos 0600", async (t) => {
  const root = tempRoot(t);
  const set = await createFifoSet({
    root,
    namespace: "ns1",
    containerId: "web",
    stdin: true,
    terminal: false,
  });
  t.equal(dirname(set.dir), join(root, "ns1"));
  t.match(basename(set.dir), /^web-[A-Za-z0-9]{6}$/);
  t.equal(set.stdin, join(set.dir, "web-stdin"));
  t.equal(set.stdout, join(set.dir, "web-stdout"));
  t.equal(set.stderr, join(set.dir, "web-stderr"));
  for (const d of [root, join(root, "ns1"), set.dir]) t.equal(statSync(d).mode & 0o777, 0o700, d);
  for (const f of [set.stdin, set.stdout, set.stderr]) {
    const st = statSync(f);
    t.ok(st.isFIFO(), f);
    t.equal(st.mode & 0o777, 0o600, f);
  }
  t.equal(ownedFifoDir(set.stdout, { root, namespace: "ns1", containerId: "web" }), set.dir);
  await removeFifoSet(set);
  t.notOk(existsSync(set.dir));
  await removeFifoSet(set); // twice is fine
});

t.test("terminal: stdin and stdout only; no stdin without -i; exec ids name the fifos", async (t) => {
  const root = tempRoot(t);
  const tty = await createFifoSet({ root, namespace: "n", containerId: "c", stdin: true, terminal: true });
  t.equal(tty.stderr, "");
  t.ok(statSync(tty.stdin).isFIFO());
  t.equal(tty.terminal, true);
  const plain = await createFifoSet({
    root,
    namespace: "n",
    containerId: "c",
    stdin: false,
    terminal: false,
  });
  t.equal(plain.stdin, "");
  const ex = await createFifoSet({
    root,
    namespace: "n",
    containerId: "c",
    processId: "e1",
    stdin: false,
    terminal: false,
  });
  t.equal(basename(ex.stdout), "e1-stdout");
  t.match(basename(ex.dir), /^c-/);
  t.not(plain.dir, ex.dir);
});

t.test("ids and namespaces are checked before any path is made", async (t) => {
  const root = tempRoot(t);
  await t.rejects(createFifoSet({ root, namespace: "..", containerId: "c", stdin: false, terminal: false }), {
    code: Code.InvalidArgument,
  });
  await t.rejects(
    createFifoSet({ root, namespace: "n", containerId: "../../x", stdin: false, terminal: false }),
    {
      code: Code.InvalidArgument,
    },
  );
  t.notOk(existsSync(root), "nothing was created");
});

t.test("ownedFifoDir and sweepFifoDirs touch only this container's directories", async (t) => {
  const root = tempRoot(t);
  const a1 = await createFifoSet({ root, namespace: "n", containerId: "a", stdin: false, terminal: false });
  const a2 = await createFifoSet({
    root,
    namespace: "n",
    containerId: "a",
    processId: "e",
    stdin: false,
    terminal: false,
  });
  const ab = await createFifoSet({ root, namespace: "n", containerId: "a-b", stdin: false, terminal: false });
  const other = await createFifoSet({
    root,
    namespace: "m",
    containerId: "a",
    stdin: false,
    terminal: false,
  });
  await mkdir(join(root, "n", "a-keep"));
  t.equal(ownedFifoDir(ab.stdout, { root, namespace: "n", containerId: "a" }), undefined, "a-b is not a's");
  t.equal(ownedFifoDir("/etc/passwd", { root, namespace: "n", containerId: "a" }), undefined);
  t.equal(ownedFifoDir("relative/x", { root, namespace: "n", containerId: "a" }), undefined);
  const removed = await sweepFifoDirs({ root, namespace: "n", containerId: "a" });
  t.same(removed.sort(), [a1.dir, a2.dir].sort());
  t.ok(existsSync(ab.dir));
  t.ok(existsSync(other.dir));
  t.ok(existsSync(join(root, "n", "a-keep")));
  t.same(await sweepFifoDirs({ root, namespace: "zz", containerId: "a" }), []);
});

t.test("FifoIO: output copied; EOF only after started() and the writers are gone", async (t) => {
  const root = tempRoot(t);
  const set = await createFifoSet({ root, namespace: "n", containerId: "c", stdin: false, terminal: false });
  const out = new Collect();
  const err = new Collect();
  const io = FifoIO.open(set, { stdout: out, stderr: err }, { keepAlive: true });
  let ended = false;
  void io.wait().then(() => {
    ended = true;
  });
  // The "shim" opens its writers (read-write, as ours does) after our readers.
  const w1 = openSync(set.stdout, constants.O_RDWR | constants.O_NONBLOCK);
  const w2 = openSync(set.stderr, constants.O_RDWR | constants.O_NONBLOCK);
  writeSync(w1, "hello\n");
  writeSync(w2, "oops\n");
  closeSync(w1);
  closeSync(w2);
  await sleep(50);
  t.notOk(ended, "our keep-alive holds EOF back until started()");
  io.started();
  await io.wait();
  t.equal(out.text, "hello\n");
  t.equal(err.text, "oops\n");
  io.close();
});

t.test("FifoIO: without a writer ever opened, a started process with no output ends at once", async (t) => {
  const root = tempRoot(t);
  const set = await createFifoSet({ root, namespace: "n", containerId: "c", stdin: false, terminal: true });
  const io = FifoIO.open(set, { stdout: new Collect(), stderr: new Collect() }, { keepAlive: true });
  io.started();
  await io.wait();
  t.pass("EOF");
  io.close();
});

t.test("FifoIO: stdin copied into the fifo; its EOF closes our end and calls onStdinClosed", async (t) => {
  const root = tempRoot(t);
  const set = await createFifoSet({ root, namespace: "n", containerId: "c", stdin: true, terminal: true });
  const input = new PassThrough();
  let closed = 0;
  const io = FifoIO.open(
    set,
    { stdin: input, stdout: new Collect(), stderr: new Collect() },
    { onStdinClosed: () => void closed++ },
  );
  // The reader side, as the shim would hold it.
  const r = openSync(set.stdin, constants.O_RDONLY | constants.O_NONBLOCK);
  input.write("abc");
  input.end("def");
  await sleep(50);
  const buf = Buffer.alloc(64);
  const { readSync } = await import("node:fs");
  const n = readSync(r, buf);
  t.equal(buf.subarray(0, n).toString(), "abcdef");
  t.equal(closed, 0, "not before the process has started");
  io.started();
  t.equal(closed, 1);
  // With our end closed and no other writer, the reader sees EOF.
  t.equal(readSync(r, buf), 0);
  closeSync(r);
  io.close();
});

t.test("drain gives up after the time given", async (t) => {
  const root = tempRoot(t);
  const set = await createFifoSet({ root, namespace: "n", containerId: "c", stdin: false, terminal: true });
  const io = FifoIO.open(set, { stdout: new Collect(), stderr: new Collect() }, { keepAlive: true });
  const lingering = openSync(set.stdout, constants.O_RDWR | constants.O_NONBLOCK); // a child still holding it
  io.started();
  const t0 = Date.now();
  await io.drain(100);
  t.ok(Date.now() - t0 < 1000);
  closeSync(lingering);
});
