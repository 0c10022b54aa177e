// The labels tsctl writes and tsruncd reads: networks, host/none, port mappings and their mistakes.
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import t from "tap";
import { NETWORKS_LABEL, PORTS_LABEL, parseNetLabels, parsePort } from "./labels.js";

const invalid = (fn: () => unknown, re: RegExp) => {
  try {
    fn();
  } catch (err) {
    return err instanceof TtrpcError && err.code === Code.InvalidArgument && re.test(err.message);
  }
  return false;
};

t.test("modes", async (tt) => {
  tt.same(parseNetLabels({}), { mode: "none", networks: [], ports: [] });
  tt.same(parseNetLabels({ [NETWORKS_LABEL]: "none" }).mode, "none");
  tt.same(parseNetLabels({ [NETWORKS_LABEL]: "host" }).mode, "host");
  tt.same(parseNetLabels({ [NETWORKS_LABEL]: "bridge, other" }), {
    mode: "cni",
    networks: ["bridge", "other"],
    ports: [],
  });
  tt.ok(invalid(() => parseNetLabels({ [NETWORKS_LABEL]: "host,bridge" }), /cannot be combined/));
  tt.ok(invalid(() => parseNetLabels({ [NETWORKS_LABEL]: "a,a" }), /named twice/));
  tt.ok(invalid(() => parseNetLabels({ [NETWORKS_LABEL]: "../etc" }), /invalid network name/));
  tt.ok(invalid(() => parseNetLabels({ [PORTS_LABEL]: "80:80" }), /need a network/));
  tt.ok(invalid(() => parseNetLabels({ [NETWORKS_LABEL]: "host", [PORTS_LABEL]: "80:80" }), /--net host/));
});

t.test("ports", async (tt) => {
  tt.same(parsePort("8080:80"), { hostPort: 8080, containerPort: 80, protocol: "tcp" });
  tt.same(parsePort("53:53/udp"), { hostPort: 53, containerPort: 53, protocol: "udp" });
  tt.same(parsePort("127.0.0.1:8080:80/tcp"), {
    hostPort: 8080,
    containerPort: 80,
    protocol: "tcp",
    hostIP: "127.0.0.1",
  });
  for (const bad of ["80", "0:80", "70000:80", "a:80", "80:80/sctp", "1.2.3:80:80", ":80"])
    tt.ok(
      invalid(() => parsePort(bad), /invalid/),
      bad,
    );
  const req = parseNetLabels({ [NETWORKS_LABEL]: "n", [PORTS_LABEL]: "1:2,3:4/udp" });
  tt.equal(req.ports.length, 2);
});
