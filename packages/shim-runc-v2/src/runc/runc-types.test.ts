import t from "tap";
import { isRuncStatus, RUNC_STATUSES } from "./runc-types.js";

t.test("runc's container statuses", async (t) => {
  t.same(RUNC_STATUSES, ["creating", "created", "running", "pausing", "paused", "stopped"]);
  for (const s of RUNC_STATUSES) t.ok(isRuncStatus(s), s);
  for (const s of ["", "Running", "exited", 1, null, undefined]) t.notOk(isRuncStatus(s), String(s));
});
