import t from "tap";
import { Code, codeOf, errdefs, isCode, TtrpcError, toTtrpcError } from "./status.js";

t.test("Code has gRPC's 17 codes with gRPC's numbers", async (t) => {
  const names = Object.keys(Code).filter((k) => Number.isNaN(Number(k)));
  t.equal(names.length, 17);
  t.same(
    names.map((n) => Code[n as keyof typeof Code]),
    Array.from({ length: 17 }, (_, i) => i),
  );
  t.equal(Code.ResourceExhausted, 8);
  t.equal(Code.Unimplemented, 12);
  t.equal(Code.Unauthenticated, 16);
});

t.test("TtrpcError carries its code, message, details and cause from birth", async (t) => {
  const cause = new Error("root");
  const e = new TtrpcError(Code.NotFound, "no such container", {
    details: [{ typeUrl: "type.googleapis.com/x", value: new Uint8Array([1]) }],
    cause,
  });
  t.ok(e instanceof Error);
  t.ok(e instanceof TtrpcError);
  t.equal(e.code, Code.NotFound);
  t.equal(e.message, "no such container");
  t.equal(e.details.length, 1);
  t.equal(e.cause, cause);
  t.equal(e.name, "TtrpcError");
  t.equal(String(e), "TtrpcError NotFound: no such container");
  t.same(new TtrpcError(Code.Internal, "x").details, []);
});

t.test("instanceof does not match look-alikes and works for a structurally branded copy", async (t) => {
  t.notOk(({ code: 5, message: "x" } as unknown) instanceof TtrpcError);
  t.notOk(new Error("x") instanceof TtrpcError);
  t.notOk((null as unknown) instanceof TtrpcError);
  // A second copy of the module (bundling) brands its errors with the same registry symbol.
  const foreign = Object.assign(new Error("x"), { code: 5 });
  Object.defineProperty(foreign, Symbol.for("tsrunc.ttrpc.TtrpcError"), { value: true });
  t.ok(foreign instanceof TtrpcError);
});

t.test("errdefs maps containerd's error kinds onto codes", async (t) => {
  const cases: [TtrpcError, Code][] = [
    [errdefs.notFound("a"), 5],
    [errdefs.alreadyExists("a"), 6],
    [errdefs.invalidArgument("a"), 3],
    [errdefs.failedPrecondition("a"), 9],
    [errdefs.notImplemented("a"), 12],
    [errdefs.unavailable("a"), 14],
  ];
  for (const [err, code] of cases) {
    t.ok(err instanceof TtrpcError);
    t.equal(err.code, code);
    t.equal(err.message, "a");
  }
  t.ok(errdefs.isNotFound(errdefs.notFound("x")));
  t.notOk(errdefs.isNotFound(errdefs.alreadyExists("x")));
  t.ok(errdefs.isAlreadyExists(errdefs.alreadyExists("x")));
  t.ok(errdefs.isInvalidArgument(errdefs.invalidArgument("x")));
  t.ok(errdefs.isFailedPrecondition(errdefs.failedPrecondition("x")));
  t.ok(errdefs.isNotImplemented(errdefs.notImplemented("x")));
  t.ok(errdefs.isUnavailable(errdefs.unavailable("x")));
});

t.test("isCode and codeOf", async (t) => {
  t.ok(isCode(new TtrpcError(Code.Aborted, "x"), Code.Aborted));
  t.notOk(isCode(new TtrpcError(Code.Aborted, "x"), Code.Canceled));
  t.notOk(isCode(new Error("x"), Code.Unknown));
  t.notOk(isCode(undefined, Code.OK));
  t.equal(codeOf(new Error("x")), Code.Unknown);
  t.equal(codeOf("str"), Code.Unknown);
  t.equal(codeOf(errdefs.notFound("x")), Code.NotFound);
});

t.test("toTtrpcError: errors without a code become Unknown", async (t) => {
  const own = errdefs.notFound("x");
  t.equal(toTtrpcError(own), own);
  const plain = new Error("boom");
  const a = toTtrpcError(plain);
  t.equal(a.code, Code.Unknown);
  t.equal(a.message, "boom");
  t.equal(a.cause, plain);
  // A Node error with a string code is still Unknown: no guessing from codes or messages.
  const enoent = Object.assign(new Error("ENOENT: no such file"), { code: "ENOENT" });
  t.equal(toTtrpcError(enoent).code, Code.Unknown);
  const b = toTtrpcError("text");
  t.equal(b.code, Code.Unknown);
  t.equal(b.message, "text");
  t.equal(toTtrpcError(undefined).code, Code.Unknown);
});

t.test("toTtrpcError: an AbortError caused by our own abort keeps the abort's code", async (t) => {
  const ac = new AbortController();
  ac.abort(new TtrpcError(Code.DeadlineExceeded, "deadline exceeded"));
  const { setTimeout: sleep } = await import("node:timers/promises");
  const err = await sleep(10_000, undefined, { signal: ac.signal }).catch((e: unknown) => e);
  t.equal(toTtrpcError(err).code, Code.DeadlineExceeded);
  // An AbortError for some other reason is Unknown.
  const other = Object.assign(new Error("aborted"), { name: "AbortError" });
  t.equal(toTtrpcError(other).code, Code.Unknown);
});
