// Loading networks from a conf directory as libcni does: file-name order, first name wins, .conf
// as a list of one, a broken neighbour skipped unless it is about the network asked for.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { loadNetwork } from "./conf.js";

function dir(tt: { teardown(fn: () => void): void }) {
  const d = mkdtempSync(join(tmpdir(), "tsrunc-cniconf-"));
  tt.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const list = (name: string, type: string) =>
  JSON.stringify({ cniVersion: "1.0.0", name, plugins: [{ type }] });

t.test("first file in name order wins; .conf becomes a list of one", async (tt) => {
  const d = dir(tt);
  writeFileSync(join(d, "20-a.conflist"), list("a", "second"));
  writeFileSync(join(d, "10-a.conflist"), list("a", "first"));
  writeFileSync(join(d, "30-b.conf"), JSON.stringify({ cniVersion: "0.4.0", name: "b", type: "loopback" }));
  writeFileSync(join(d, "README"), "not a conf");
  tt.equal((await loadNetwork(d, "a"))?.plugins[0]?.type, "first");
  const b = await loadNetwork(d, "b");
  tt.same(b?.plugins, [{ type: "loopback" }]);
  tt.equal(b?.cniVersion, "0.4.0");
  tt.equal(await loadNetwork(d, "c"), undefined);
  tt.equal(await loadNetwork(join(d, "nonexistent"), "a"), undefined);
});

t.test("a broken file fails only the network it names", async (tt) => {
  const d = dir(tt);
  writeFileSync(join(d, "10-broken.conflist"), '{"name": "x", "cniVersion": "1.0.0", "plugins": [');
  writeFileSync(join(d, "20-ok.conflist"), list("ok", "bridge"));
  tt.equal((await loadNetwork(d, "ok"))?.name, "ok");
  await tt.rejects(loadNetwork(d, "x"), /10-broken\.conflist: not JSON/);
  writeFileSync(
    join(d, "30-v.conflist"),
    JSON.stringify({ cniVersion: "9.0.0", name: "v", plugins: [{ type: "a" }] }),
  );
  await tt.rejects(loadNetwork(d, "v"), /unsupported cniVersion/);
});
