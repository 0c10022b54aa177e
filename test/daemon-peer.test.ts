// Who may use tsruncd's socket: root always; with --group GID also processes whose primary or
// supplementary groups include GID; nobody else. The socket's mode keeps others from connecting
// (0600, or root:GID 0660: EACCES at connect); behind it tsruncd checks the peer by SO_PEERCRED
// and refuses everyone else's calls with PermissionDenied (code 7) — seen here by loosening the
// socket's mode to 0666, as a careless admin might. Peers other than root run as uid 65534
// through `setpriv`, so the temp root is made traversable (0711; tsruncd makes <state> 0711).
import * as fs from "node:fs";
import * as path from "node:path";
import { execa } from "execa";
import t from "tap";
import { type DaemonEnv, daemonEnv, TSCTL } from "./helpers/daemon.js";
import { REPO } from "./helpers/our-shim.js";

t.setTimeout(120_000);

const NOBODY = 65534;
const GID = 64_321; // a group nobody belongs to (numeric --group needs no /etc/group entry)
const OTHER_GID = 64_322;

/** setpriv's credential flags: uid and primary gid NOBODY (or `primary`), `groups` or none. */
function creds(o: { groups?: number[]; primary?: number }): string[] {
  return [
    `--reuid=${NOBODY}`,
    `--regid=${o.primary ?? NOBODY}`,
    o.groups?.length ? `--groups=${o.groups.join(",")}` : "--clear-groups",
  ];
}

/** tsctl as uid 65534 (through `env -i`: tap's NODE_OPTIONS must not reach it). */
async function tsctlAs(d: DaemonEnv, o: { groups?: number[]; primary?: number }, args: string[]) {
  const env = Object.entries(d.env).map(([k, v]) => `${k}=${v}`);
  const r = await execa(
    "setpriv",
    [
      ...creds(o),
      "env",
      "-i",
      ...env,
      process.execPath,
      TSCTL,
      "--address",
      d.address,
      "-n",
      d.namespace,
      ...args,
    ],
    { reject: false, stdin: "ignore", timeout: 30_000 },
  );
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

const CLIENT = `
const [ttrpc, address] = process.argv.slice(1);
const { Client } = await import(ttrpc);
const c = await Client.connect(address);
const out = [];
for (let i = 0; i < 2; i++) {
  try {
    await c.call("containerd.services.containers.v1.Containers", "List", new Uint8Array());
    out.push({ code: 0 });
  } catch (e) {
    out.push({ code: e.code, message: e.message });
  }
}
c.close();
console.log(JSON.stringify(out));
`;

/** Two raw ttrpc calls as uid 65534: the status code of each (a small client, not tsctl). */
async function callsAs(d: DaemonEnv, o: { groups?: number[]; primary?: number }) {
  const ttrpc = new URL(`file://${path.join(REPO, "packages/ttrpc/dist/index.js")}`).href;
  const r = await execa(
    "setpriv",
    [...creds(o), "env", "-i", process.execPath, "--input-type=module", "-e", CLIENT, ttrpc, d.address],
    { reject: false, stdin: "ignore", timeout: 30_000 },
  );
  if (r.exitCode !== 0) throw new Error(`client failed: ${String(r.stderr)}`);
  return JSON.parse(String(r.stdout)) as { code: number; message?: string }[];
}

const socketMode = (d: DaemonEnv) => fs.statSync(d.address).mode & 0o777;

t.test("socket access by SO_PEERCRED: root, --group members, nobody else", async (t) => {
  const d = await daemonEnv(t);
  fs.chmodSync(d.root.path, 0o711);

  await t.test("without --group: root only", async (t) => {
    await d.start();
    t.equal(socketMode(d), 0o600);
    t.equal((await d.tsctl(["c", "ls"])).exitCode, 0, "root is admitted");

    const r = await tsctlAs(d, {}, ["c", "ls"]);
    t.equal(r.exitCode, 1);
    t.equal(r.stderr, `tsctl: permission denied connecting to tsruncd at ${d.address}`);

    fs.chmodSync(d.address, 0o666); // a loosened mode does not let anyone in
    const calls = await callsAs(d, {});
    t.same(
      calls.map((c) => c.code),
      [7, 7],
      "PermissionDenied on the first call and the next",
    );
    t.match(calls[0]?.message, /permission denied: uid 65534 is not root/);
    const r2 = await tsctlAs(d, {}, ["c", "ls"]);
    t.equal(r2.exitCode, 1);
    t.match(
      r2.stderr,
      /^tsctl: tsruncd: permission denied: uid 65534 is not root \(tsruncd runs without --group\)\n?$/,
    );
    t.match(d.log(), /"level":40,[^\n]*"uid":65534,[^\n]*"pid":\d+,[^\n]*"msg":"peer refused"/);
    t.equal((await d.tsctl(["c", "ls"])).exitCode, 0, "root still is");
    await d.stop();
  });

  await t.test("with --group GID", async (t) => {
    await d.start(["--group", String(GID)]);
    const st = fs.statSync(d.address);
    t.same([st.mode & 0o777, st.uid, st.gid], [0o660, 0, GID], "socket root:GID 0660");

    const member = await tsctlAs(d, { groups: [OTHER_GID, GID] }, ["c", "ls"]);
    t.same([member.exitCode, member.stderr], [0, ""], "a supplementary member is admitted");
    t.match(member.stdout, /^CONTAINER/);
    t.same(
      (await callsAs(d, { groups: [GID] })).map((c) => c.code),
      [0, 0],
    );
    const primary = await tsctlAs(d, { primary: GID }, ["c", "ls"]);
    t.same([primary.exitCode, primary.stderr], [0, ""], "primary gid GID is admitted");

    const other = await tsctlAs(d, { groups: [OTHER_GID] }, ["c", "ls"]);
    t.equal(other.exitCode, 1);
    t.equal(other.stderr, `tsctl: permission denied connecting to tsruncd at ${d.address}`);

    fs.chmodSync(d.address, 0o666);
    const calls = await callsAs(d, { groups: [OTHER_GID] });
    t.same(
      calls.map((c) => c.code),
      [7, 7],
      "another group: PermissionDenied",
    );
    t.match(calls[0]?.message, new RegExp(`uid 65534 is neither root nor in group ${GID}`));
    const noGroups = await tsctlAs(d, {}, ["c", "ls"]);
    t.match(noGroups.stderr, /^tsctl: tsruncd: permission denied: uid 65534 is neither root nor in group/);
    t.same(
      (await callsAs(d, { groups: [GID] })).map((c) => c.code),
      [0, 0],
      "members still are",
    );
    t.equal((await d.tsctl(["c", "ls"])).exitCode, 0, "root always is");
  });

  await d.finish(t);
});
