// tsctl run --net/-p: what reaches the labels, --net host's spec, and usage mistakes.
import t from "tap";
import { UsageError } from "./args.js";
import { applyHostNetwork, NETWORKS_LABEL, netLabels, PORTS_LABEL, parseNetOptions } from "./net-options.js";

t.test("labels", async (tt) => {
  tt.same(netLabels(parseNetOptions([], [])), {}, "the default (none) writes no label");
  tt.same(netLabels(parseNetOptions(["bridge", "b,c"], ["8080:80", "53:53/udp"])), {
    [NETWORKS_LABEL]: "bridge,b,c",
    [PORTS_LABEL]: "8080:80,53:53/udp",
  });
  tt.same(netLabels(parseNetOptions(["host"], [])), { [NETWORKS_LABEL]: "host" });
});

t.test("--net host drops the network namespace from the spec", async (tt) => {
  const spec = { linux: { namespaces: [{ type: "pid" }, { type: "network" }, { type: "mount" }] } };
  applyHostNetwork(spec, parseNetOptions(["host"], []));
  tt.same(spec.linux.namespaces, [{ type: "pid" }, { type: "mount" }]);
  const other = { linux: { namespaces: [{ type: "network" }] } };
  applyHostNetwork(other, parseNetOptions(["bridge"], []));
  tt.same(other.linux.namespaces, [{ type: "network" }]);
});

t.test("mistakes", async (tt) => {
  tt.throws(() => parseNetOptions(["host", "bridge"], []), UsageError);
  tt.throws(() => parseNetOptions(["../x"], []), UsageError);
  tt.throws(() => parseNetOptions([], ["80:80"]), /needs a CNI network/);
  tt.throws(() => parseNetOptions(["host"], ["80:80"]), /needs a CNI network/);
  tt.throws(() => parseNetOptions(["bridge"], ["80"]), /invalid -p/);
  tt.throws(() => parseNetOptions(["bridge"], ["80:80/sctp"]), /invalid -p/);
});
