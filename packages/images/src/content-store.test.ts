import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm, stat, utimes } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { text } from "node:stream/consumers";
import { Code, isCode } from "@tsrunc/ttrpc/status";
import t, { type Test } from "tap";
import { ContentStore } from "./content-store.js";
import { sha256Digest } from "./digest.js";

async function freshStore(t: Test): Promise<ContentStore> {
  const root = await mkdtemp(join(tmpdir(), "tsrunc-cs-"));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  return ContentStore.open(root);
}

function blob(data: Buffer | string) {
  const b = Buffer.from(data);
  return { data: b, desc: { digest: sha256Digest(b), size: b.length } };
}

const rejectsCode = async (t: Test, p: Promise<unknown>, code: Code, name: string) => {
  try {
    await p;
    t.fail(`${name}: resolved`);
  } catch (err) {
    t.ok(isCode(err, code), `${name}: ${Code[code]} (${String(err)})`);
  }
};

t.test("writeBlob, has, info, readBlob, openRead, list, delete", async (t) => {
  const cs = await freshStore(t);
  const { data, desc } = blob("hello world\n");
  t.notOk(await cs.has(desc.digest));
  t.equal(await cs.info(desc.digest), undefined);
  await cs.writeBlob(desc, data);
  await cs.writeBlob(desc, data); // an existing blob: no-op
  t.ok(await cs.has(desc.digest));
  t.same(await cs.info(desc.digest), desc);
  t.same(await cs.readBlob(desc.digest), data);
  t.equal(await text(cs.openRead(desc.digest)), "hello world\n");
  t.equal(await text(cs.openRead(desc.digest, { start: 6 })), "world\n");
  t.same(await cs.list(), [desc]);
  t.equal(cs.blobPath(desc.digest), join(cs.root, "blobs", "sha256", desc.digest.slice(7)));
  await rejectsCode(t, cs.readBlob(desc.digest, 5), Code.ResourceExhausted, "bounded read");
  await cs.delete(desc.digest);
  t.notOk(await cs.has(desc.digest));
  await rejectsCode(t, cs.delete(desc.digest), Code.NotFound, "delete twice");
  await rejectsCode(t, cs.readBlob(desc.digest), Code.NotFound, "readBlob missing");
  await rejectsCode(t, text(cs.openRead(desc.digest)), Code.NotFound, "openRead missing");
  t.same(await readdir(join(cs.root, "ingest")), []);
});

t.test("digests are validated before any path is built", async (t) => {
  const cs = await freshStore(t);
  const bad = [
    "sha256:../../etc/passwd",
    `sha256:${"A".repeat(64)}`,
    `sha512:${"a".repeat(128)}`,
    `sha256:${"a".repeat(63)}`,
    `sha256:${"a".repeat(64)}/`,
    "",
  ];
  for (const d of bad) {
    t.throws(() => cs.blobPath(d), { code: Code.InvalidArgument }, JSON.stringify(d));
    t.throws(() => cs.openRead(d), { code: Code.InvalidArgument });
    await rejectsCode(t, cs.has(d), Code.InvalidArgument, `has ${d}`);
    await rejectsCode(t, cs.writer("r", { digest: d, size: 1 }), Code.InvalidArgument, `writer ${d}`);
  }
  const { desc } = blob("x");
  await rejectsCode(
    t,
    cs.writer("r", { digest: desc.digest, size: -1 }),
    Code.InvalidArgument,
    "negative size",
  );
  await rejectsCode(t, cs.writer("", desc), Code.InvalidArgument, "empty ref");
});

t.test("a wrong digest or size fails with FailedPrecondition and leaves no blob", async (t) => {
  const cs = await freshStore(t);
  const { data, desc } = blob(randomBytes(1000));
  await rejectsCode(t, cs.writeBlob({ ...desc, size: 999 }, data), Code.FailedPrecondition, "writeBlob size");
  await rejectsCode(
    t,
    cs.writeBlob({ ...desc, digest: sha256Digest("other") }, data),
    Code.FailedPrecondition,
    "writeBlob digest",
  );
  // digest mismatch at commit: the ingest is discarded
  let w = await cs.writer("ref-a", { digest: sha256Digest("other"), size: data.length });
  await w.write(data);
  await rejectsCode(t, w.commit(), Code.FailedPrecondition, "commit digest");
  t.same(await cs.listIngests(), []);
  // short: kept for a resume
  w = await cs.writer("ref-b", desc);
  await w.write(data.subarray(0, 10));
  await rejectsCode(t, w.commit(), Code.FailedPrecondition, "commit short");
  t.equal((await cs.listIngests())[0]?.offset, 10);
  // too long: discarded
  w = await cs.writer("ref-b", desc);
  t.equal(w.offset, 10);
  await rejectsCode(t, w.write(Buffer.concat([data, data])), Code.FailedPrecondition, "write past size");
  await rejectsCode(t, w.write(data), Code.FailedPrecondition, "write after close");
  t.same(await cs.listIngests(), []);
  t.same(await cs.list(), []);
});

t.test("a ref is held by one writer; committing an existing blob is a no-op", async (t) => {
  const cs = await freshStore(t);
  const { data, desc } = blob(randomBytes(4096));
  const w1 = await cs.writer("layer", desc);
  await rejectsCode(t, cs.writer("layer", desc), Code.Unavailable, "second writer of a ref");
  const w2 = await cs.writer("layer-other", desc);
  await w1.write(data);
  await w2.write(data);
  await w1.commit();
  await w2.commit();
  t.same(await cs.list(), [desc]);
  t.same(await cs.listIngests(), []);
  const w3 = await cs.writer("layer", desc); // released after commit
  await w3.abort();
  t.same(await readdir(join(cs.root, "ingest")), []);
});

t.test("resume: the bytes of an interrupted ingest are reused", async (t) => {
  const cs = await freshStore(t);
  const { data, desc } = blob(randomBytes(3 * 1024 * 1024 + 17));
  const w = await cs.writer("pull-1", desc);
  await w.write(data.subarray(0, 1000));
  await w.write(data.subarray(1000, 2_000_000));
  await rejectsCode(t, w.commit(), Code.FailedPrecondition, "short commit closes");
  const r = await cs.writer("pull-1", desc);
  t.equal(r.offset, 2_000_000);
  await r.write(data.subarray(r.offset));
  await r.commit();
  t.same(await cs.readBlob(desc.digest), data);
  // a different expected blob for the same ref starts over
  const other = blob(randomBytes(100));
  const a = await cs.writer("pull-2", other.desc);
  await a.write(other.data.subarray(0, 50));
  await rejectsCode(t, a.commit(), Code.FailedPrecondition, "short");
  const b = await cs.writer("pull-2", { ...other.desc, size: 200, digest: sha256Digest("x") });
  t.equal(b.offset, 0);
  await b.abort();
});

t.test("a writer SIGKILLed mid-write leaves no blob; the next writer resumes and commits", async (t) => {
  const cs = await freshStore(t);
  const { data, desc } = blob(randomBytes(8 * 1024 * 1024));
  const script = `
    import { ContentStore } from ${JSON.stringify(new URL("./content-store.js", import.meta.url).href)};
    import { randomBytes, createHash } from "node:crypto";
    const cs = await ContentStore.open(process.argv[1]);
    const desc = JSON.parse(process.argv[2]);
    const w = await cs.writer("crash-ref", desc);
    // the same bytes as the parent's: derived from a seed sent on stdin
    const chunks = [];
    for await (const c of process.stdin) chunks.push(c);
    const data = Buffer.concat(chunks);
    let off = 0;
    while (true) {
      const end = Math.min(off + 65536, data.length - 1);
      await w.write(data.subarray(off, end));
      off = end;
      if (off >= 5 * 1024 * 1024) { process.stdout.write("written " + off + "\\n"); await new Promise(() => {}); }
    }
  `;
  const child = spawn(
    process.execPath,
    ["--input-type=module", "-e", script, cs.root, JSON.stringify(desc)],
    {
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  child.stdin.end(data);
  const line = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString();
      if (out.includes("\n")) resolve(out.trim());
    });
    child.on("exit", (code) => reject(new Error(`child exited ${code}: ${out}`)));
  });
  child.kill("SIGKILL");
  await new Promise((r) => child.once("exit", r));
  const written = Number(line.split(" ")[1]);
  t.ok(written >= 5 * 1024 * 1024, line);
  t.notOk(await cs.has(desc.digest), "no blob visible after the crash");
  const ingests = await cs.listIngests();
  t.equal(ingests.length, 1);
  t.equal(ingests[0]?.ref, "crash-ref");
  t.equal(ingests[0]?.offset, written);

  const w = await cs.writer("crash-ref", desc);
  t.equal(w.offset, written, "resumes at the bytes already there");
  await w.write(data.subarray(w.offset));
  await w.commit();
  const got = await cs.readBlob(desc.digest, 16 * 1024 * 1024);
  t.equal(createHash("sha256").update(got).digest("hex"), desc.digest.slice(7));
  t.same(await readdir(join(cs.root, "ingest")), []);
  t.equal((await stat(cs.blobPath(desc.digest))).mode & 0o777, 0o444);
});

t.test("abortStaleIngests removes old ingests but not live writers'", async (t) => {
  const cs = await freshStore(t);
  const a = blob("aaa");
  const b = blob("bbb");
  const wa = await cs.writer("a", a.desc);
  await wa.write(a.data.subarray(0, 1));
  await rejectsCode(t, wa.commit(), Code.FailedPrecondition, "short");
  const wb = await cs.writer("b", b.desc);
  await wb.write(b.data.subarray(0, 1));
  const old = new Date(Date.now() - 3_600_000);
  for (const name of await readdir(join(cs.root, "ingest"))) {
    await utimes(join(cs.root, "ingest", name, "data"), old, old);
    await utimes(join(cs.root, "ingest", name), old, old);
  }
  t.equal(await cs.abortStaleIngests(60_000), 1, "only the one no writer holds");
  t.equal(await cs.abortStaleIngests(60_000), 0);
  await wb.write(b.data.subarray(1));
  await wb.commit();
  t.ok(await cs.has(b.desc.digest));
  t.same(await readdir(join(cs.root, "ingest")), []);
});

t.test("ingestStream stores a stream under the digest it has, checking what is expected", async (t) => {
  const cs = await freshStore(t);
  const { data, desc } = blob(randomBytes(300_000));
  const chunks = [data.subarray(0, 1000), data.subarray(1000)];
  t.same(await cs.ingestStream(chunks), desc);
  t.same(await cs.readBlob(desc.digest), data);
  t.same(await cs.ingestStream(chunks, { expected: desc }), desc, "again: a no-op");
  await rejectsCode(t, cs.ingestStream(chunks, { expected: { size: 5 } }), Code.FailedPrecondition, "size");
  await rejectsCode(
    t,
    cs.ingestStream([Buffer.from("x")], { expected: { digest: desc.digest } }),
    Code.FailedPrecondition,
    "digest",
  );
  await rejectsCode(t, cs.ingestStream(chunks, { maxBytes: 10 }), Code.ResourceExhausted, "bounded");
  t.same(await readdir(join(cs.root, "ingest")), []);
  t.same(await cs.list(), [desc]);
});

t.test("ingest: digest and size unknown until commit (Content.Write as ctr import uses it)", async (t) => {
  const cs = await freshStore(t);
  const { data, desc } = blob("an archive's blob, digest unknown beforehand");
  const w = await cs.ingest("tar-blobs/x", { size: desc.size });
  t.equal(w.offset, 0);
  await w.write(data.subarray(0, 10));
  const st = await cs.ingestStatus("tar-blobs/x");
  t.equal(st?.offset, 10, "status while writing");
  t.same(st?.expected, { size: desc.size });
  t.equal(await cs.ingestStatus("other"), undefined, "no ingest of another ref");
  await rejectsCode(t, cs.abortIngest("tar-blobs/x"), Code.Unavailable, "abort of a held ingest");
  await w.write(data.subarray(10));
  const c = await w.commitAs();
  t.same(c, { ...desc, existed: false });
  t.same(await cs.info(desc.digest), desc);
  t.equal(await cs.ingestStatus("tar-blobs/x"), undefined, "ingest gone after commit");
  // Same bytes again: committed, existed.
  const w2 = await cs.ingest("again");
  await w2.write(data);
  t.same(await w2.commitAs({ digest: desc.digest, size: desc.size }), { ...desc, existed: true });
  t.same(await cs.ingestStates(), [], "no ingest left");
});

t.test("ingest: restart, resume, close keeps it, commit checks, abortIngest", async (t) => {
  const cs = await freshStore(t);
  const { data, desc } = blob(randomBytes(3000));
  let w = await cs.ingest("r1", { digest: desc.digest });
  await w.write(Buffer.from("garbage"));
  await w.restart();
  t.equal(w.offset, 0, "restart empties");
  await w.write(data.subarray(0, 1000));
  await w.close();
  w = await cs.ingest("r1", { digest: desc.digest });
  t.equal(w.offset, 1000, "resumed after close");
  await w.write(data.subarray(1000));
  await rejectsCode(t, w.commitAs({ size: 2999 }), Code.FailedPrecondition, "size given at commit");
  t.equal((await cs.ingestStatus("r1"))?.offset, 3000, "a wrong size keeps the ingest");
  w = await cs.ingest("r1", { digest: desc.digest });
  await rejectsCode(
    t,
    w.commitAs({ digest: sha256Digest("other") }),
    Code.FailedPrecondition,
    "digest given at commit",
  );
  t.equal(await cs.ingestStatus("r1"), undefined, "a wrong digest discards the ingest");
  w = await cs.ingest("r2", {});
  await w.write(data);
  await w.close();
  const states = await cs.ingestStates();
  t.same(
    states.map((s) => [s.ref, s.offset]),
    [["r2", 3000]],
  );
  t.ok(states[0]!.startedAt instanceof Date && states[0]!.updatedAt instanceof Date);
  await cs.abortIngest("r2");
  await rejectsCode(t, cs.abortIngest("r2"), Code.NotFound, "abort of no ingest");
  await rejectsCode(t, cs.ingest("r3", { digest: "sha256:nope" }), Code.InvalidArgument, "bad digest");
  const other = await cs.ingest("r4", { size: 2 });
  await rejectsCode(t, other.write(Buffer.from("abc")), Code.FailedPrecondition, "past the size");
  t.equal(await cs.ingestStatus("r4"), undefined, "overrun discards");
});
