// tsctl's images commands and `tsctl run IMAGE` against a live tsruncd and a real docker-registry
// (distribution 2.8) serving an image built by umoci (test/helpers/app-image.ts): pull with
// --plain-http, ls/inspect, run honouring the image's Entrypoint/Cmd/Env/WorkingDir/User,
// run -d + exec + containers rm removing the snapshot, rm + prune never touching a running
// container's snapshot, import of skopeo's oci-archive and docker-archive, export taken by
// `ctr images import` and run by `ctr run`, and the one-line errors of bad input.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { connect, type TsruncClient } from "@tsrunc/client";
import { makeCa, makeHtpasswd, startRegistry } from "@tsrunc/images/distribution/test-registry";
import { execa } from "execa";
import t, { type Test } from "tap";
import { type AppImage, appImage, GREETING_FILE } from "./helpers/app-image.js";
import { startContainerd } from "./helpers/containerd.js";
import { type DaemonEnv, daemonEnv, TSCTL } from "./helpers/daemon.js";

t.setTimeout(600_000);

type Result = { exitCode: number; stdout: string; stderr: string };

function oneErrorLine(t: Test, r: Result, re: RegExp, what: string, exitCode = 1): void {
  t.equal(r.exitCode, exitCode, `${what}: exit ${exitCode}`);
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  t.equal(lines.length, 1, `${what}: one line on stderr (${JSON.stringify(r.stderr)})`);
  t.match(lines[0] ?? "", /^tsctl: /, `${what}: starts with "tsctl: "`);
  t.match(lines[0] ?? "", re, `${what}: says what is wrong`);
  t.notMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
}

const img: AppImage = await appImage(t);
const d: DaemonEnv = await daemonEnv(t);
await d.start();
const client: TsruncClient = await connect({ address: d.address, namespace: d.namespace });
t.teardown(() => client.close());
/** tsctl with its output byte for byte (DaemonEnv.tsctl strips the final newline). */
const tsctl = async (args: string[], timeoutMs = 120_000): Promise<Result> => {
  const r = await d.spawnTsctl(args, { timeoutMs });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
};
/** Every file under a blobs/sha256 directory of the daemon's root. */
function blobsLeft(): string[] {
  const r = spawnSync("find", [join(d.root.path, "root"), "-path", "*/blobs/sha256/*", "-type", "f"], {
    encoding: "utf8",
  });
  return r.stdout.split("\n").filter(Boolean);
}
const snapshotKeys = async () =>
  (await client.snapshots.list())
    .filter((s) => s.kind === 2) // ACTIVE: containers' snapshots (committed ones are layers)
    .map((s) => s.name)
    .sort();

t.test("pull --plain-http, then ls (table, json, -q) and inspect", async (t) => {
  const r = await tsctl(["images", "pull", "--plain-http", img.ref]);
  t.equal(r.exitCode, 0, r.stderr);
  t.equal(r.stdout, "", "no progress and no output when stdout is not a terminal");
  const again = await tsctl(["images", "pull", "--plain-http", "-q", img.ref]);
  t.equal(again.exitCode, 0, `a second pull finds everything there: ${again.stderr}`);

  const table = await tsctl(["images", "ls"]);
  t.equal(table.exitCode, 0, table.stderr);
  const [header, row, ...more] = table.stdout.split("\n");
  t.match(header, /^REF\s+TYPE\s+DIGEST\s+CREATED$/);
  t.match(
    row,
    new RegExp(
      `^${img.ref.replace(/[.]/g, "\\.")}\\s+application/vnd\\.oci\\.image\\.manifest\\.v1\\+json\\s+sha256:[0-9a-f]{64}\\s+\\d{4}-`,
    ),
  );
  t.same(more, [""], "one image, and the output ends with a newline");
  const json = JSON.parse((await tsctl(["images", "ls", "--format", "json"])).stdout);
  t.equal(json.length, 1);
  t.equal(json[0].name, img.ref);
  t.match(json[0].target, { mediaType: /manifest/, digest: /^sha256:/, size: Number });
  t.equal((await tsctl(["images", "ls", "-q"])).stdout, `${img.ref}\n`);

  const inspect = await tsctl(["images", "inspect", img.ref]);
  t.equal(inspect.exitCode, 0, inspect.stderr);
  const info = JSON.parse(inspect.stdout);
  t.equal(info.name, img.ref);
  t.match(info.chainId, /^sha256:[0-9a-f]{64}$/);
  t.same(info.config.config.Entrypoint, ["/bin/entry"]);
  t.same(info.config.config.Cmd, ["cat", "/etc/greeting"]);
  t.equal(info.config.config.User, "app");
  t.equal(info.config.rootfs.diff_ids.length, 2);
});

t.test("run --rm IMAGE: the image's Entrypoint, Cmd, Env, WorkingDir and User", async (t) => {
  const r = await tsctl(["run", "--rm", img.ref, "r1"]);
  t.equal(r.exitCode, 0, r.stderr);
  t.equal(r.stdout, `entry:image\n${GREETING_FILE}\n`, "Entrypoint then Cmd, with the image's Env");

  const script = 'id -u; id -g; id -G; pwd; echo "$KEEP $PATH"; cat /etc/layer2; ls /gone 2>&1; exit 7';
  const r2 = await tsctl(["run", "--rm", "--env", "GREETING=flag", img.ref, "r2", "sh", "-c", script]);
  t.equal(r2.exitCode, 7, `the command's exit status: ${r2.stderr}`);
  t.equal(
    r2.stdout,
    [
      "entry:flag",
      "1000",
      "1000",
      "1000 2000",
      "/srv/work",
      "1 /bin:/usr/bin",
      "second layer",
      "ls: /gone: No such file or directory",
      "",
    ].join("\n"),
    "COMMAND replaced Cmd (Entrypoint kept); --env over the image's Env; user app with its groups",
  );

  const r3 = await tsctl([
    "run",
    "--rm",
    "--user",
    "root",
    "--cwd",
    "/tmp",
    img.ref,
    "r3",
    "sh",
    "-c",
    "id -u; pwd",
  ]);
  t.equal(r3.exitCode, 0, r3.stderr);
  t.equal(r3.stdout, "entry:image\n0\n/tmp\n", "--user and --cwd win over the image's");
  const r4 = await tsctl(["run", "--rm", "--user", "app:extra", img.ref, "r4", "id", "-g"]);
  t.equal(r4.stdout, "entry:image\n2000\n", "USER:GROUP names resolved in the image");

  t.same(await snapshotKeys(), [], "--rm removed every container snapshot");
  t.equal((await tsctl(["containers", "ls", "-q"])).stdout, "");
});

t.test("run -d, tasks exec, kill, containers rm: the snapshot goes with the container", async (t) => {
  const r = await tsctl(["run", "-d", "--null-io", img.ref, "bg1", "sleep", "1000"]);
  t.equal(r.exitCode, 0, r.stderr);
  t.same(await snapshotKeys(), ["bg1"], "an active snapshot keyed by the container id");
  const c = await client.containers.get("bg1");
  t.equal(c.image, img.ref);
  t.equal(c.snapshotter, "overlayfs");
  t.equal(c.snapshotKey, "bg1");
  const ex = await tsctl([
    "tasks",
    "exec",
    "--exec-id",
    "e1",
    "bg1",
    "sh",
    "-c",
    "echo written > /srv/work/f; cat /srv/work/f; id -un",
  ]);
  t.equal(ex.exitCode, 0, ex.stderr);
  t.equal(ex.stdout, "written\napp\n", "exec as the image's user, writing into the snapshot");
  t.equal((await tsctl(["tasks", "kill", "-s", "KILL", "bg1"])).exitCode, 0);
  t.equal((await tsctl(["tasks", "wait", "bg1"])).exitCode, 0);
  const rm = await tsctl(["containers", "rm", "bg1"]);
  t.equal(rm.exitCode, 0, rm.stderr);
  t.same(await snapshotKeys(), [], "containers rm removed the snapshot");
});

t.test("images rm + prune free the space, never a running container's snapshot", async (t) => {
  const r = await tsctl(["run", "-d", "--null-io", img.ref, "keep1", "sleep", "1000"]);
  t.equal(r.exitCode, 0, r.stderr);
  const rm = await tsctl(["images", "rm", img.ref]);
  t.equal(rm.exitCode, 0, rm.stderr);
  t.equal(rm.stdout, `${img.ref}\n`);
  t.equal((await tsctl(["images", "ls", "-q"])).stdout, "", "the record is gone");
  const p1 = await tsctl(["images", "prune", "--all"]);
  t.equal(p1.exitCode, 0, p1.stderr);
  t.match(p1.stdout, /^removed \d+ blobs and \d+ snapshots, freed [\d.]+ (B|KiB|MiB)\n$/);
  t.same(await snapshotKeys(), ["keep1"], "the running container's snapshot stays");
  const ex = await tsctl(["tasks", "exec", "--exec-id", "e1", "keep1", "cat", "/etc/greeting"]);
  t.equal(ex.stdout, `${GREETING_FILE}\n`, "and the container still reads its image's files");
  t.equal((await tsctl(["tasks", "rm", "-f", "keep1"])).exitCode, 0);
  t.equal((await tsctl(["containers", "rm", "keep1"])).exitCode, 0);
  const p2 = await tsctl(["images", "prune"]);
  t.equal(p2.exitCode, 0, p2.stderr);
  t.match(
    p2.stdout,
    /^removed \d+ blobs and [1-9]\d* snapshots, freed [\d.]+ (B|KiB|MiB)\n$/,
    "the layers' snapshots went",
  );
  t.same(
    (await client.snapshots.list()).map((s) => s.name),
    [],
    "no snapshot left at all",
  );
  t.same(blobsLeft(), [], "no blob left in the content store");
  // The image pulls again from scratch (nothing half-collected is in the way).
  const again = await tsctl(["images", "pull", "--plain-http", img.ref]);
  t.equal(again.exitCode, 0, again.stderr);
});

t.test("images import: skopeo's oci-archive and docker-archive, a file and stdin", async (t) => {
  const oci = await tsctl(["images", "import", img.ociArchive]);
  t.equal(oci.exitCode, 0, oci.stderr);
  t.equal(oci.stdout, "tsrunc.test/oci:1\n");
  oneErrorLine(t, await tsctl(["images", "import", "-"]), /./, "an empty stdin is no archive");
  const viaStdin = await importFromStdin(d, img.dockerArchive);
  t.equal(viaStdin.exitCode, 0, viaStdin.stderr);
  t.equal(viaStdin.stdout, "tsrunc.test/docker:1\n");
  for (const name of ["tsrunc.test/oci:1", "tsrunc.test/docker:1"]) {
    const r = await tsctl([
      "run",
      "--rm",
      name,
      `imp-${name.includes("oci") ? "o" : "d"}`,
      "cat",
      "/etc/layer2",
    ]);
    t.equal(r.exitCode, 0, r.stderr);
    t.equal(r.stdout, "entry:image\nsecond layer\n", `${name} runs`);
  }
});

/** `tsctl images import -` with the file on stdin (through `env -i`, as DaemonEnv.tsctl). */
async function importFromStdin(d: DaemonEnv, file: string): Promise<Result> {
  const env = Object.entries(d.env).map(([k, v]) => `${k}=${v}`);
  const r = await execa(
    "env",
    [
      "-i",
      ...env,
      process.execPath,
      TSCTL,
      "--address",
      d.address,
      "-n",
      d.namespace,
      "images",
      "import",
      "-",
    ],
    { reject: false, inputFile: file, timeout: 120_000, stripFinalNewline: false },
  );
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

t.test("images export, then ctr images import and ctr run in a private containerd", async (t) => {
  const file = join(img.dir, "export.tar");
  const r = await tsctl(["images", "export", file, img.ref]);
  t.equal(r.exitCode, 0, r.stderr);
  t.ok(statSync(file).size > 500_000, "an archive holding busybox");
  const cd = await startContainerd(t);
  const imp = await cd.ctr(["images", "import", file], { timeout: 120_000 });
  t.equal(imp.exitCode, 0, `ctr images import: ${imp.stdout} ${imp.stderr}`);
  t.match((await cd.ctr(["images", "ls", "-q"])).stdout, img.ref);
  const run = await cd.ctr(["run", "--rm", img.ref, "x1", "/bin/sh", "-c", "cat /etc/greeting; id -u"]);
  t.equal(run.exitCode, 0, run.stderr);
  t.equal(
    run.stdout,
    `${GREETING_FILE}\n1000`,
    "ctr runs our export, as the image's user (ctr's output as the harness strips it)",
  );
});

t.test("pull over TLS with --ca and basic auth with --user", async (t) => {
  const dir = join(img.dir, "tls");
  mkdirSync(dir);
  const ca = await makeCa(dir);
  const htpasswd = await makeHtpasswd(dir, "alice", "s3cret:x");
  mkdirSync(join(dir, "data"));
  const reg = await startRegistry(t, {
    rootdir: join(dir, "data"),
    tls: { certificate: ca.serverCert, key: ca.serverKey },
    htpasswd,
  });
  const ref = `${reg.host}/tsrunc/private:1`;
  await execa("skopeo", [
    "--insecure-policy",
    "copy",
    "--quiet",
    "--dest-tls-verify=false",
    "--dest-creds",
    "alice:s3cret:x",
    `oci:${img.layout}:app`,
    `docker://${ref}`,
  ]);
  oneErrorLine(
    t,
    await tsctl(["images", "pull", ref]),
    /certificate|x509|self.signed|verify/i,
    "a CA we do not trust",
  );
  oneErrorLine(
    t,
    await tsctl(["images", "pull", "--ca", ca.caCert, ref]),
    /401|unauthori[sz]ed|credentials/i,
    "no credentials",
  );
  oneErrorLine(
    t,
    await tsctl(["images", "pull", "--ca", ca.caCert, "--user", "alice:wrong", ref]),
    /401|unauthori[sz]ed|credentials/i,
    "wrong credentials",
  );
  const ok = await tsctl(["images", "pull", "--ca", ca.caCert, "--user", "alice:s3cret:x", ref]);
  t.equal(ok.exitCode, 0, ok.stderr);
  const r = await tsctl(["run", "--rm", ref, "tls1", "cat", "/etc/layer2"]);
  t.equal(r.stdout, "entry:image\nsecond layer\n", r.stderr);
  t.equal((await tsctl(["images", "rm", "--sync", ref])).exitCode, 0);
});

t.test("bad input: one line, the right exit code", async (t) => {
  oneErrorLine(
    t,
    await tsctl(["run", "--rm", "nope.test/none:1", "b1"]),
    /image nope\.test\/none:1 not found: pull it first/,
    "unknown image",
  );
  oneErrorLine(t, await tsctl(["images", "pull", "--plain-http", "UPPER/Case::x"]), /./, "a bad reference");
  oneErrorLine(
    t,
    await tsctl(["images", "pull", "--plain-http", `${img.registryHost}/tsrunc/absent:1`]),
    /not found|NotFound|absent/i,
    "a reference the registry does not have",
  );
  oneErrorLine(
    t,
    await tsctl(["images", "import", join(img.dir, "missing.tar")]),
    /missing\.tar: no such file/,
    "a missing archive",
  );
  oneErrorLine(t, await tsctl(["images", "import", img.layout]), /is a directory/, "a directory as archive");
  oneErrorLine(
    t,
    await tsctl(["images", "pull", "--ca", join(img.dir, "no.pem"), img.ref]),
    /--ca .*no\.pem: no such file/,
    "a missing CA file",
  );
  oneErrorLine(
    t,
    await tsctl(["images", "pull", "--user", "nocolon", img.ref]),
    /--user needs USER:PASSWORD/,
    "credentials without a password",
    2,
  );
  oneErrorLine(
    t,
    await tsctl(["images", "export", join(img.dir, "x.tar"), "nope.test/none:1"]),
    /not found/,
    "export of an unknown image",
  );
  t.notOk(existsSync(join(img.dir, "x.tar")), "no file made for a failed export");
  oneErrorLine(t, await tsctl(["images", "rm", "nope.test/none:1"]), /not found/, "rm of an unknown image");
  oneErrorLine(
    t,
    await tsctl(["images", "frob"]),
    /no such command: images frob/,
    "an unknown subcommand",
    2,
  );
  oneErrorLine(
    t,
    await tsctl(["run", "--rm", "--user", "nobody-here", img.ref, "b2", "true"]),
    /nobody-here/,
    "a user the image does not have",
  );
  const noShim = ["--runtime", "io.containerd.nope.v2", img.ref];
  const f1 = await tsctl(["run", "--rm", ...noShim, "f1", "true"]);
  t.equal(f1.exitCode, 1, "a run failing after Prepare (no such shim at Tasks.Create)");
  t.same(await snapshotKeys(), [], "--rm: its container and snapshot are gone");
  const f2 = await tsctl(["run", ...noShim, "f2", "true"]);
  t.equal(f2.exitCode, 1, f2.stderr);
  t.same(await snapshotKeys(), ["f2"], "without --rm the container stays (as ctr), and so does its snapshot");
  const taken = await tsctl(["run", "--rm", img.ref, "f2", "true"]);
  oneErrorLine(t, taken, /container f2 already exists/, "an id in use");
  t.same(await snapshotKeys(), ["f2"], "…and the existing container's snapshot is left alone");
  t.equal((await tsctl(["containers", "rm", "f2"])).exitCode, 0);
  t.same(await snapshotKeys(), [], "no failed run left a snapshot");
  t.equal((await tsctl(["containers", "ls", "-q"])).stdout, "", "…nor a container");
});

t.test("the end: nothing left", async (t) => {
  await client.close();
  await d.finish(t);
});
