import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { sharesPidNamespace } from "./pid-namespace.js";

t.test("a pid namespace of its own, a joined one, none, an unreadable spec", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "pidns-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const spec = (namespaces: unknown) =>
    writeFileSync(join(dir, "config.json"), JSON.stringify({ linux: { namespaces } }));
  t.equal(await sharesPidNamespace(dir), false, "no config.json: nothing to go by");
  spec([{ type: "mount" }, { type: "pid" }]);
  t.equal(await sharesPidNamespace(dir), false, "its own (no path)");
  spec([{ type: "pid", path: "/proc/42/ns/pid" }]);
  t.equal(await sharesPidNamespace(dir), true, "a pod's (CRI: pid POD)");
  spec([{ type: "mount" }]);
  t.equal(await sharesPidNamespace(dir), true, "the host's (no pid entry)");
  writeFileSync(join(dir, "config.json"), "{not json");
  t.equal(await sharesPidNamespace(dir), true, "unparsable: shared, the safe side");
});
