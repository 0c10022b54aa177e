import t from "tap";
import type { MethodDescriptor } from "./service.js";

t.test("descriptor shape", async (t) => {
  const m: MethodDescriptor<string, string, "unary"> = {
    name: "Echo",
    kind: "unary",
    requestType: { encode: (s) => Buffer.from(s), decode: (b) => Buffer.from(b).toString() },
    responseType: { encode: (s) => Buffer.from(s), decode: (b) => Buffer.from(b).toString() },
  };
  t.equal(m.responseType.decode(m.requestType.encode("x")), "x");
});
