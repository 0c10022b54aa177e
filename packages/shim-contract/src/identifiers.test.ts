import t from "tap";
import { identifierProblem } from "./identifiers.js";

t.test("accepts containerd-style ids", async (t) => {
  for (const id of ["a", "abc-1", "a.b_c-d", "X9", "a".repeat(76)])
    t.equal(identifierProblem(id), undefined, id);
});

t.test("rejects hostile ids", async (t) => {
  for (const id of ["", "../x", "a/b", "a\0b", "-a", "a-", "a..b", "é", "a".repeat(77), "a b"]) {
    t.type(identifierProblem(id), "string", JSON.stringify(id));
  }
});
