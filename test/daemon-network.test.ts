// tsctl run --net/-p through a real tsruncd with Debian's CNI plugins (bridge, host-local,
// portmap, firewall), on a network of the test's own: containers reach each other and the host
// reaches them; -p reaches a busybox httpd from the host's loopback; the state is shown by
// containers info and tasks ls --format json; a broken conf or a missing plugin fails run with
// the plugin's message and leaves nothing; 50 run/delete cycles, a SIGKILL of tsruncd amid 10
// networked creates, and a DEL that fails (retried at boot, shown until then) leave no veth, no
// lease, no iptables rule and no pinned netns behind. Traffic only to the test's containers.
import * as fs from "node:fs";
import * as path from "node:path";
import { TasksService } from "@tsrunc/protocol/daemon";
import { Client } from "@tsrunc/ttrpc";
import { execa } from "execa";
import t, { type Test } from "tap";
import { testNetwork } from "./helpers/cleanup/network.js";
import { type DaemonEnv, daemonEnv } from "./helpers/daemon.js";

async function setup(tt: Test, extraArgs: string[] = []) {
  const d = await daemonEnv(tt);
  const net = testNetwork(d.root.path);
  tt.teardown(() => net.sweep());
  const confDir = path.join(d.root.path, "net.d");
  net.write(confDir);
  const args = ["--cni-conf-dir", confDir, ...extraArgs];
  await d.start(args);
  return { d, net, confDir, args };
}

const pinned = (d: DaemonEnv) => {
  const dir = path.join(d.state, ".netns", d.namespace);
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
};

async function ok(tt: Test, r: Promise<{ exitCode: number; stderr: string; stdout: string }>, what: string) {
  const res = await r;
  tt.equal(res.exitCode, 0, `${what}${res.exitCode ? `: ${res.stderr}` : ""}`);
  return res;
}

function ipOf(info: string): string {
  const c = JSON.parse(info) as {
    extensions: Record<string, { networks: Array<{ ips: Array<{ address: string }> }> }>;
  };
  const addr = c.extensions["io.tsrunc.net/status"]?.networks[0]?.ips[0]?.address ?? "";
  return addr.split("/")[0] as string;
}

function noLeaks(tt: Test, d: DaemonEnv, net: ReturnType<typeof testNetwork>) {
  tt.same(net.veths(), [], "no veth left on the bridge");
  tt.same(net.leases(), [], "no host-local lease left");
  tt.same(net.iptables(), [], "no iptables rule of the network left");
  tt.same(pinned(d), [], "no pinned netns left");
}

t.test("two containers on the bridge, the host, -p, info and tasks ls", async (tt) => {
  const { d, net } = await setup(tt);
  const www = d.rootfs("web");
  fs.mkdirSync(path.join(www, "www"));
  fs.writeFileSync(path.join(www, "www", "index.html"), "hello from the container\n");
  const hostPort = 20000 + Math.floor(Math.random() * 20000);
  await ok(
    tt,
    d.tsctl([
      "run",
      "-d",
      "--null-io",
      "--net",
      net.name,
      "-p",
      `${hostPort}:80`,
      "--rootfs",
      www,
      "web",
      "httpd",
      "-f",
      "-p",
      "80",
      "-h",
      "/www",
    ]),
    "run web",
  );
  await ok(
    tt,
    d.tsctl(["run", "-d", "--null-io", "--net", net.name, "--rootfs", d.rootfs("b"), "b", "sleep", "1000"]),
    "run b",
  );
  const info = await ok(tt, d.tsctl(["containers", "info", "web"]), "info web");
  const webIp = ipOf(info.stdout);
  tt.ok(webIp.startsWith(net.prefix), `web has ${webIp} in ${net.subnet}`);
  const st = JSON.parse(info.stdout).extensions["io.tsrunc.net/status"];
  tt.equal(st.phase, "attached");
  tt.equal(st.networks[0].ifname, "eth0");
  tt.equal(st.networks[0].ips[0].gateway, `${net.prefix}1`);
  tt.same(st.ports, [{ hostPort, containerPort: 80, protocol: "tcp" }]);
  const ls = JSON.parse(
    (await ok(tt, d.tsctl(["tasks", "ls", "--format", "json"]), "tasks ls")).stdout,
  ) as Array<{ id: string; network?: { networks: Array<{ ips: Array<{ address: string }> }> } }>;
  tt.equal(
    ls.find((x) => x.id === "web")?.network?.networks[0]?.ips[0]?.address.split("/")[0],
    webIp,
    "tasks ls shows the IP",
  );
  tt.equal(net.veths().length, 2, "two veths on the bridge");

  const ping = await d.tsctl(["tasks", "exec", "--exec-id", "p1", "b", "ping", "-c1", "-W3", webIp]);
  tt.equal(ping.exitCode, 0, `b pings web (${ping.stdout}${ping.stderr})`);
  const nc = await d.tsctl([
    "run",
    "--rm",
    "--net",
    net.name,
    "--rootfs",
    d.rootfs("c"),
    "c",
    "wget",
    "-q",
    "-O-",
    `http://${webIp}/`,
  ]);
  tt.equal(nc.stdout.trim(), "hello from the container", `a third container fetches from web (${nc.stderr})`);
  const host = await execa("/bin/busybox", ["ping", "-c1", "-W3", webIp], { reject: false });
  tt.equal(host.exitCode, 0, "the host reaches the container's IP");
  // Node's fetch: Debian's static busybox wget crashes on the host (glibc NSS in a static binary).
  const viaPort = await fetch(`http://127.0.0.1:${hostPort}/`, { signal: AbortSignal.timeout(5000) })
    .then((r) => r.text())
    .catch((e: Error) => `failed: ${e.message} ${String(e.cause)}`);
  tt.equal(viaPort.trim(), "hello from the container", "-p reaches httpd from the host's loopback");

  for (const id of ["web", "b"]) {
    await ok(tt, d.tsctl(["tasks", "kill", "-s", "SIGKILL", id]), `kill ${id}`);
    await d.tsctl(["tasks", "wait", id]);
    await ok(tt, d.tsctl(["tasks", "rm", id]), `tasks rm ${id}`);
    await ok(tt, d.tsctl(["containers", "rm", id]), `containers rm ${id}`);
  }
  noLeaks(tt, d, net);
  await d.finish(tt);
});

t.test("--net none, --net host, and a usage mistake", async (tt) => {
  const { d, net } = await setup(tt);
  const none = await ok(
    tt,
    d.tsctl(["run", "--rm", "--rootfs", d.rootfs("n"), "n", "ip", "-o", "link"]),
    "run --net none",
  );
  tt.notMatch(none.stdout, /eth0/, "no eth0 without --net");
  tt.match(none.stdout, /lo:/);
  const host = await ok(
    tt,
    d.tsctl(["run", "--rm", "--net", "host", "--rootfs", d.rootfs("h"), "h", "ip", "-o", "link"]),
    "run --net host",
  );
  tt.match(
    host.stdout,
    new RegExp(net.bridge.slice(0, 8)).test(host.stdout) ? /./ : /lo:/,
    "the host's links",
  );
  const hostLinks = (await execa("ip", ["-o", "link"])).stdout.split("\n").length;
  tt.equal(host.stdout.trim().split("\n").length, hostLinks, "--net host sees the host's interfaces");
  const bad = await d.tsctl([
    "run",
    "--rm",
    "-p",
    "80",
    "--net",
    net.name,
    "--rootfs",
    d.rootfs("x"),
    "x",
    "true",
  ]);
  tt.not(bad.exitCode, 0);
  tt.equal(bad.stderr.trim().split("\n").length, 1, `one line: ${bad.stderr.trim()}`);
  await d.finish(tt);
});

t.test("a broken conf or a missing plugin fails run with the message and leaves nothing", async (tt) => {
  const { d, net, confDir } = await setup(tt);
  fs.writeFileSync(
    path.join(confDir, "60-missing.conflist"),
    JSON.stringify({
      cniVersion: "1.0.0",
      name: `${net.name}-m`,
      plugins: [{ type: "tsrunc-no-such-plugin" }],
    }),
  );
  const broken = net.conflist();
  (broken.plugins as Array<{ ipam: { subnet: string } }>)[0]!.ipam.subnet = "300.1.2.0/24";
  broken.name = `${net.name}-b`;
  fs.writeFileSync(path.join(confDir, "61-broken.conflist"), JSON.stringify(broken));
  const missing = await d.tsctl(["run", "--net", `${net.name}-m`, "--rootfs", d.rootfs("m"), "m", "true"]);
  tt.not(missing.exitCode, 0);
  tt.match(missing.stderr, /tsrunc-no-such-plugin.*not found/, missing.stderr.trim());
  const bad = await d.tsctl(["run", "--net", `${net.name}-b`, "--rootfs", d.rootfs("b"), "b", "true"]);
  tt.not(bad.exitCode, 0);
  tt.match(bad.stderr, /CNI ADD bridge: .*300\.1\.2\.0.*\[CNI code/, bad.stderr.trim());
  const unknown = await d.tsctl([
    "run",
    "--net",
    "tsrunc-no-such-net",
    "--rootfs",
    d.rootfs("u"),
    "u",
    "true",
  ]);
  tt.match(unknown.stderr, /no configuration of that name/, unknown.stderr.trim());
  tt.equal((await d.tsctl(["containers", "ls", "-q"])).stdout.trim(), "", "no container left");
  tt.equal((await d.tsctl(["tasks", "ls", "--format", "json"])).stdout.trim(), "[]", "no task left");
  noLeaks(tt, d, net);
  await d.finish(tt);
});

t.test("50 run --rm cycles leave nothing", async (tt) => {
  const { d, net } = await setup(tt);
  const rootfs = d.rootfs("cyc");
  for (let i = 0; i < 50; i++) {
    const r = await d.tsctl([
      "run",
      "--rm",
      "--net",
      net.name,
      "-p",
      `${30000 + i}:80`,
      "--rootfs",
      rootfs,
      `cyc${i}`,
      "ip",
      "-4",
      "-o",
      "addr",
      "show",
      "eth0",
    ]);
    if (r.exitCode !== 0 || !r.stdout.includes(net.prefix)) {
      tt.fail(`cycle ${i}: ${r.exitCode} ${r.stdout} ${r.stderr}`);
      break;
    }
  }
  tt.pass("50 cycles ran with an address of the network");
  noLeaks(tt, d, net);
  await d.finish(tt);
});

t.test("SIGKILL of tsruncd amid 10 networked creates, then restart: nothing leaks", async (tt) => {
  const { d, net, args } = await setup(tt);
  const runs = Array.from({ length: 10 }, (_, i) =>
    d.tsctl([
      "run",
      "-d",
      "--null-io",
      "--net",
      net.name,
      "--rootfs",
      d.rootfs(`k${i}`),
      `k${i}`,
      "sleep",
      "1000",
    ]),
  );
  // Kill when some are attached and others are still on their way.
  await new Promise((r) => setTimeout(r, 1200));
  await d.kill();
  await Promise.all(runs);
  await d.start(args);
  // Boot reconciles: rolled-back creates lose their networks; the running ones keep theirs.
  await new Promise((r) => setTimeout(r, 500));
  const ids = (await d.tsctl(["containers", "ls", "-q"])).stdout.split("\n").filter(Boolean);
  const tasks = JSON.parse((await d.tsctl(["tasks", "ls", "--format", "json"])).stdout) as Array<{
    id: string;
    status: string;
    network?: unknown;
  }>;
  tt.equal(
    net.leases().length,
    tasks.filter((x) => x.status !== "STOPPED").length,
    "a lease per live task, none for the rolled back",
  );
  for (const x of tasks) if (x.status === "RUNNING") tt.ok(x.network, `${x.id} keeps its network`);
  for (const id of ids) {
    await d.tsctl(["tasks", "rm", "-f", id]);
    await ok(tt, d.tsctl(["containers", "rm", id]), `containers rm ${id}`);
  }
  noLeaks(tt, d, net);
  await d.finish(tt);
});

t.test("a DEL that fails is shown and retried at the next boot; a dead shim's networks go", async (tt) => {
  const bin = fs.mkdtempSync("/tmp/tsr-cnibin-");
  tt.teardown(() => fs.rmSync(bin, { recursive: true, force: true }));
  const marker = path.join(bin, "fail-del");
  // A chained plugin that passes prevResult through on ADD and fails DEL while the marker exists.
  fs.writeFileSync(
    path.join(bin, "tsrunc-flaky"),
    `#!/bin/sh\nconf=$(cat)\ncase "$CNI_COMMAND" in\n` +
      `ADD) printf '%s' "$conf" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["prevResult"]))' ;;\n` +
      `DEL) if [ -e ${marker} ]; then echo '{"cniVersion":"1.0.0","code":11,"msg":"flaky says try again"}'; exit 1; fi ;;\n` +
      `VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}' ;;\nesac\n`,
    { mode: 0o755 },
  );
  const { d, net, confDir } = await setup(tt, ["--cni-bin-dir", `${bin}:/usr/lib/cni`]);
  net.write(confDir, [{ type: "tsrunc-flaky" }]);
  await ok(
    tt,
    d.tsctl(["run", "-d", "--null-io", "--net", net.name, "--rootfs", d.rootfs("f"), "f", "sleep", "1000"]),
    "run f",
  );
  fs.writeFileSync(marker, "");
  await d.tsctl(["tasks", "rm", "-f", "f"]);
  const info = JSON.parse((await ok(tt, d.tsctl(["containers", "info", "f"]), "info f")).stdout);
  const st = info.extensions["io.tsrunc.net/status"];
  tt.equal(st?.phase, "detaching", "the failed teardown is shown");
  tt.match(st?.error, /flaky says try again.*CNI code 11/);
  tt.same(net.leases(), [], "the other plugins' DEL ran after the failing one (the lease is released)");
  tt.same(pinned(d), ["f"], "the pinned netns is kept for the retry");
  fs.rmSync(marker);
  await d.stop();
  await d.start(["--cni-conf-dir", confDir, "--cni-bin-dir", `${bin}:/usr/lib/cni`]);
  await new Promise((r) => setTimeout(r, 500));
  const after = JSON.parse((await ok(tt, d.tsctl(["containers", "info", "f"]), "info f")).stdout);
  tt.notOk(after.extensions["io.tsrunc.net/status"], "boot retried the DEL");
  tt.same(pinned(d), [], "and unpinned the netns");
  await ok(tt, d.tsctl(["containers", "rm", "f"]), "containers rm f");

  // A shim that dies: its networks are removed when the daemon sees the connection close.
  await ok(
    tt,
    d.tsctl(["run", "-d", "--null-io", "--net", net.name, "--rootfs", d.rootfs("g"), "g", "sleep", "1000"]),
    "run g",
  );
  const shimPid = Number(fs.readFileSync(path.join(d.state, d.namespace, "g", "shim.pid"), "utf8"));
  const ctrPid = JSON.parse((await d.tsctl(["tasks", "ls", "--format", "json"])).stdout)[0].pid as number;
  process.kill(shimPid, "SIGKILL");
  process.kill(ctrPid, "SIGKILL");
  for (let i = 0; i < 100 && net.leases().length; i++) await new Promise((r) => setTimeout(r, 100));
  tt.same(net.leases(), [], "the dead shim's lease is released");
  await d.tsctl(["tasks", "rm", "g"]);
  await ok(tt, d.tsctl(["containers", "rm", "g"]), "containers rm g");
  noLeaks(tt, d, net);
  await d.finish(tt);
});

t.test("after a reboot (no shim, no bundle, no pin) boot runs DEL with an empty netns path", async (tt) => {
  const { d, net, args } = await setup(tt);
  await ok(
    tt,
    d.tsctl(["run", "-d", "--null-io", "--net", net.name, "--rootfs", d.rootfs("r"), "r", "sleep", "1000"]),
    "run r",
  );
  tt.equal(net.leases().length, 1);
  // What a reboot leaves: /run emptied (bundle, runc state, pin), processes gone, the SQLite row
  // and host-local's lease on disk.
  await d.kill();
  const bundle = path.join(d.state, d.namespace, "r");
  const shimPid = Number(fs.readFileSync(path.join(bundle, "shim.pid"), "utf8"));
  process.kill(shimPid, "SIGKILL");
  await execa("runc", ["--root", path.join(d.state, ".runc", d.namespace), "delete", "--force", "r"], {
    reject: false,
  });
  const pin = path.join(d.state, ".netns", d.namespace, "r");
  await execa("umount", [pin]);
  fs.rmSync(pin);
  fs.rmSync(bundle, { recursive: true, force: true });
  await d.start(args);
  for (let i = 0; i < 50 && net.leases().length; i++) await new Promise((r) => setTimeout(r, 100));
  tt.same(net.leases(), [], "the lease is released by a DEL with CNI_NETNS empty");
  tt.same(net.veths(), [], "no veth (it went with the namespace)");
  const info = JSON.parse((await ok(tt, d.tsctl(["containers", "info", "r"]), "info r")).stdout);
  tt.notOk(info.extensions["io.tsrunc.net/status"], "no network state left");
  // Debian's bridge 1.1.1 removes its masquerade rules only from inside the namespace; after a
  // real reboot iptables starts empty, here the sweep removes them.
  net.sweep();
  await d.tsctl(["tasks", "rm", "r"]);
  await ok(tt, d.tsctl(["containers", "rm", "r"]), "containers rm r");
  noLeaks(tt, d, net);
  await d.finish(tt);
});

t.test("tsruncd killed at every step of attach and teardown: the next boot leaves nothing", async (tt) => {
  const { d, net, args } = await setup(tt);
  const rootfs = d.rootfs("cp");
  for (const point of ["net:recorded", "net:pinned", "net:added", "create:network-attached"]) {
    await d.stop();
    await d.start(args, { env: { TSRUNC_CRASH_AT: point } });
    const id = `cp-${point.replace(/[^a-z]/g, "")}`;
    const r = await d.tsctl([
      "run",
      "-d",
      "--null-io",
      "--net",
      net.name,
      "--rootfs",
      rootfs,
      id,
      "sleep",
      "1000",
    ]);
    tt.not(r.exitCode, 0, `${point}: run fails with the daemon`);
    await d.exited();
    await d.start(args);
    await d.tsctl(["tasks", "rm", "-f", id]);
    await d.tsctl(["containers", "rm", id]);
    tt.same(net.leases(), [], `${point}: no lease after the boot`);
    tt.same(net.veths(), [], `${point}: no veth`);
    tt.same(net.iptables(), [], `${point}: no iptables rule`);
    tt.same(pinned(d), [], `${point}: no pin`);
  }
  // The teardown interrupted after it was recorded, before any DEL.
  await ok(
    tt,
    d.tsctl(["run", "-d", "--null-io", "--net", net.name, "--rootfs", rootfs, "cpdel", "sleep", "1000"]),
    "run cpdel",
  );
  await d.stop();
  await d.start(args, { env: { TSRUNC_CRASH_AT: "net:detaching" } });
  await d.tsctl(["tasks", "rm", "-f", "cpdel"]);
  await d.exited();
  tt.equal(net.leases().length, 1, "the crash came before DEL");
  await d.start(args);
  for (let i = 0; i < 50 && net.leases().length; i++) await new Promise((r) => setTimeout(r, 100));
  await d.tsctl(["tasks", "rm", "-f", "cpdel"]);
  await ok(tt, d.tsctl(["containers", "rm", "cpdel"]), "containers rm cpdel");
  noLeaks(tt, d, net);
  await d.finish(tt);
});

t.test("a Tasks.Delete whose deadline expires at once still removes the networks", async (tt) => {
  const { d, net } = await setup(tt);
  await ok(
    tt,
    d.tsctl(["run", "-d", "--null-io", "--net", net.name, "--rootfs", d.rootfs("dl"), "dl", "sleep", "1000"]),
    "run dl",
  );
  await ok(tt, d.tsctl(["tasks", "kill", "-s", "SIGKILL", "dl"]), "kill dl");
  await d.tsctl(["tasks", "wait", "dl"]);
  const client = await Client.connect(d.address, { timeoutMs: 5000 });
  tt.teardown(() => client.close());
  const tasks = client.service(TasksService);
  // 1 ms: the caller gives up long before the plugins' DEL can run; the teardown must not care.
  const res = await tasks
    .delete({ containerId: "dl" }, { metadata: { "containerd-namespace": d.namespace }, timeoutMs: 1 })
    .then(
      () => "ok",
      (e: Error) => e.message,
    );
  tt.comment(`the caller saw: ${res}`);
  for (let i = 0; i < 100 && (net.leases().length || pinned(d).length); i++)
    await new Promise((r) => setTimeout(r, 100));
  tt.same(net.leases(), [], "the lease is released");
  const info = JSON.parse((await ok(tt, d.tsctl(["containers", "info", "dl"]), "info dl")).stdout);
  tt.notOk(info.extensions["io.tsrunc.net/status"], "no network state left");
  tt.equal((await d.tsctl(["tasks", "ls", "--format", "json"])).stdout.trim(), "[]", "the task is gone");
  await ok(tt, d.tsctl(["containers", "rm", "dl"]), "containers rm dl");
  noLeaks(tt, d, net);
  await d.finish(tt);
});
