import t from "tap";
import { criuErrorLines, criuLogPath, lastLogError, parseRuncLog, stderrMessage } from "./runc-log.js";

t.test("the last error-level message of a runc JSON log", async (t) => {
  const log = [
    '{"level":"warning","msg":"a warning","time":"2026-11-27T23:33:48Z"}',
    '{"level":"error","msg":"first error","time":"2026-11-27T23:33:48Z"}',
    '{"level":"error","msg":"runc create failed: container with given ID already exists","time":"2026-11-27T23:33:51Z"}',
    '{"level":"info","msg":"later info"}',
    '{"level":"error","msg":"torn',
    "not json",
    "",
  ].join("\n");
  t.equal(parseRuncLog(log).length, 4);
  t.equal(lastLogError(log), "runc create failed: container with given ID already exists");
  t.equal(lastLogError(""), undefined);
  t.equal(lastLogError('{"level":"warning","msg":"w"}\n'), undefined);
  t.equal(lastLogError('{"level":"error","msg":"No help topic for \'x\'\\n"}'), "No help topic for 'x'");
  t.equal(lastLogError('{"level":"fatal","msg":"boom"}'), "boom");
  t.equal(lastLogError('[1,2]\n{"msg":"no level"}\nnull'), undefined);
});

t.test("runc's message from stderr", async (t) => {
  t.equal(stderrMessage("container does not exist\n"), "container does not exist");
  t.equal(
    stderrMessage('time="2026-11-27T23:35:29Z" level=error msg="container with id c2 is not running"\n'),
    "container with id c2 is not running",
  );
  t.equal(stderrMessage('level=warning msg="w"\nlevel=error msg="a \\"quoted\\" word"\n'), 'a "quoted" word');
  t.equal(stderrMessage("level=error msg=bare\n"), "bare");
  t.equal(stderrMessage("  \n"), undefined);
  t.equal(
    stderrMessage("criu failed: type DUMP errno 0\nlog file: /w/dump.log\n"),
    "criu failed: type DUMP errno 0\nlog file: /w/dump.log",
  );
});

t.test("CRIU's log and its error lines", async (t) => {
  t.equal(criuLogPath("criu failed: type DUMP errno 0\nlog file: /tmp/w/dump.log"), "/tmp/w/dump.log");
  t.equal(criuLogPath("container does not exist"), undefined);
  const dump = [
    "(00.000000) Version: 3.17.1 (gitid 0)",
    "(00.000742) Error (criu/util.c:642): exited, status=1",
    "(00.001242) Error (criu/util.c:642): exited, status=1",
    "(00.007384) Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds",
    "(00.007386) Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable",
    "(00.007440) Adjust mmap_min_addr 0x1000 -> 0x10000",
    "Error (criu/cr-dump.c:1): no timestamp",
  ].join("\n");
  t.same(criuErrorLines(dump), [
    "exited, status=1",
    "vdso: Unexpected rt vDSO area bounds",
    "vdso: Failed to fill self vdso symtable",
    "no timestamp",
  ]);
  t.same(criuErrorLines(dump, 2), ["vdso: Failed to fill self vdso symtable", "no timestamp"]);
  t.same(criuErrorLines("nothing wrong\n"), []);
});
