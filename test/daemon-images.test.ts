// tsruncd's image API end to end, through ttrpc with the generated stubs: an image built with
// umoci (busybox-static, an /etc/passwd and /etc/group, a second layer with a whiteout), pushed by
// skopeo to a real docker-registry on loopback, pulled and unpacked by the daemon; Config resolves
// the image's user; the snapshot's mounts run a container on our shim and on Debian's Go shim;
// Images.Delete and Prune collect what no image or container uses, never a running container's
// snapshot; OCI and docker archives imported through the client stream; our export imported by
// `ctr images import`; a hostile layer fails cleanly.

import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildSpec, decodeEvent } from "@tsrunc/client";
import {
  buildFixture,
  makeCa,
  makeHtpasswd,
  makeTar,
  pushTag,
  startRegistry,
  tempDir,
} from "@tsrunc/images/distribution/test-registry";
import {
  ContainersService,
  EventsService,
  ImagesService,
  ImageToolsService,
  type imagetools,
  SnapshotsService,
  TasksService,
} from "@tsrunc/protocol/daemon";
import { OciSpecType, packAny } from "@tsrunc/protocol/shim";
import { Client, Code } from "@tsrunc/ttrpc";
import { execa } from "execa";
import t from "tap";
import { startContainerd } from "./helpers/containerd.js";
import { type DaemonEnv, daemonEnv } from "./helpers/daemon.js";
import { waitFor } from "./helpers/wait.js";

t.setTimeout(600_000);

const run = async (cmd: string, args: string[]) => {
  const r = await execa(cmd, args, { reject: false, stdin: "ignore" });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr}`);
  return String(r.stdout);
};

/** An OCI layout with tag "img": busybox + passwd/group (user app, 1000:1000, also in group extra 2000), then a layer deleting /gone. */
async function buildImage(base: string): Promise<string> {
  const layout = join(base, "oci");
  await run("umoci", ["init", "--layout", layout]);
  await run("umoci", ["new", "--image", `${layout}:img`]);
  await run("umoci", [
    "config",
    "--image",
    `${layout}:img`,
    "--config.cmd",
    "/bin/sh",
    "--config.env",
    "PATH=/bin",
  ]);
  const b1 = join(base, "b1");
  await run("umoci", ["unpack", "--image", `${layout}:img`, b1]);
  const r = join(b1, "rootfs");
  for (const d of ["bin", "etc", "tmp", "gone"]) mkdirSync(join(r, d), { recursive: true });
  writeFileSync(join(r, "bin/busybox"), readFileSync("/bin/busybox"), { mode: 0o755 });
  for (const c of ["sh", "cat", "ls", "echo", "id", "sleep", "true"])
    await run("ln", ["-s", "busybox", join(r, "bin", c)]);
  writeFileSync(join(r, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n");
  writeFileSync(join(r, "etc/group"), "root:x:0:\napp:x:1000:\nextra:x:2000:app\n");
  writeFileSync(join(r, "etc/greeting"), "hello from layer 1\n");
  writeFileSync(join(r, "gone/file"), "x");
  await run("umoci", ["repack", "--image", `${layout}:img`, b1]);
  const b2 = join(base, "b2");
  await run("umoci", ["unpack", "--image", `${layout}:img`, b2]);
  rmSync(join(b2, "rootfs/gone"), { recursive: true });
  writeFileSync(join(b2, "rootfs/etc/greeting"), "hello from layer 2\n");
  await run("umoci", ["repack", "--image", `${layout}:img`, b2]);
  // Last: umoci unpack would look the user up in a rootfs that has no /etc/passwd yet.
  await run("umoci", ["config", "--image", `${layout}:img`, "--config.user", "app"]);
  return layout;
}

function connectApi(env: DaemonEnv) {
  return (async () => {
    const client = await Client.connect(env.address, { timeoutMs: 5000 });
    const o = (timeoutMs = 120_000) => ({ metadata: { "containerd-namespace": env.namespace }, timeoutMs });
    return {
      client,
      o,
      images: client.service(ImagesService),
      snapshots: client.service(SnapshotsService),
      tools: client.service(ImageToolsService),
      containers: client.service(ContainersService),
      tasks: client.service(TasksService),
    };
  })();
}
type Conn = Awaited<ReturnType<typeof connectApi>>;

async function pullAll(
  c: Conn,
  req: Parameters<Conn["tools"]["pull"]>[0],
): Promise<imagetools.PullProgress[]> {
  const out: imagetools.PullProgress[] = [];
  try {
    for await (const m of c.tools.pull(req, c.o())) out.push(m);
  } catch (err) {
    (err as Error).message += ` (after ${JSON.stringify(out.map((m) => m.status))})`;
    throw err;
  }
  return out;
}

const rootOf = (env: DaemonEnv) => join(env.root.path, "root");
const blobCount = (env: DaemonEnv) => readdirSync(join(rootOf(env), "content/blobs/sha256")).length;
const ingestCount = (env: DaemonEnv) => readdirSync(join(rootOf(env), "content/ingest")).length;
/** Bytes on disk in the unfinished ingest of `digest` (a pull's ingest ref names the digest). */
function ingestBytes(env: DaemonEnv, digest: string): number {
  const dir = join(rootOf(env), "content/ingest");
  let n = 0;
  for (const name of readdirSync(dir)) {
    try {
      if (readFileSync(join(dir, name, "ref"), "utf8").includes(digest))
        n += statSync(join(dir, name, "data")).size;
    } catch {
      // not made yet, or just committed
    }
  }
  return n;
}

/** Runs `args` in a container on the image's chain; returns its output and exit status. */
async function runOn(
  c: Conn,
  env: DaemonEnv,
  id: string,
  chainId: string,
  runtime: string,
  args: string[],
  user: { uid: number; gid: number; additionalGids: number[] },
  opts: { detach?: boolean } = {},
): Promise<{ out: string; status: number; mounts: { type: string; options: string[] }[] }> {
  const prep = await c.snapshots.prepare({ snapshotter: "overlayfs", key: id, parent: chainId }, c.o());
  const spec = buildSpec({ namespace: env.namespace, id, args });
  spec.process.user = { uid: user.uid, gid: user.gid, additionalGids: user.additionalGids };
  await c.containers.create(
    {
      container: {
        id,
        runtime: { name: runtime },
        spec: packAny(OciSpecType, spec),
        snapshotter: "overlayfs",
        snapshotKey: id,
        image: "",
      },
    },
    c.o(),
  );
  const outFile = join(env.root.path, `${id}.out`);
  writeFileSync(outFile, "");
  await c.tasks.create(
    { containerId: id, rootfs: prep.mounts, stdout: `file://${outFile}`, stderr: `file://${outFile}` },
    c.o(),
  );
  await c.tasks.start({ containerId: id }, c.o());
  if (opts.detach) return { out: "", status: -1, mounts: prep.mounts };
  const w = await c.tasks.wait({ containerId: id }, c.o());
  await c.tasks.delete({ containerId: id }, c.o());
  await c.containers.delete({ id }, c.o());
  await c.snapshots.remove({ snapshotter: "overlayfs", key: id }, c.o());
  return { out: readFileSync(outFile, "utf8"), status: w.exitStatus, mounts: prep.mounts };
}

const base = await tempDir(t as never, "tsrunc-dimg-");
const layout = await buildImage(base);
const registry = await startRegistry(t as never, { rootdir: join(base, "registry") });
const ref = `${registry.host}/tsr/img:1`;
await pushTag(layout, "img", ref);

t.test("pull with progress, Config's user and chain id, runs on our shim and the Go shim", async (t) => {
  const env = await daemonEnv(t);
  await env.start();
  const c = await connectApi(env);
  t.teardown(() => c.client.close());

  const bad = await pullAll(c, { ref: "docker.io/Library/x", plainHttp: true }).catch((e: unknown) => e);
  t.match(bad, { code: Code.InvalidArgument }, "a bad reference is InvalidArgument");
  const missing = await pullAll(c, { ref: `${registry.host}/tsr/nothing:1`, plainHttp: true }).catch(
    (e: unknown) => e,
  );
  t.match(missing, { code: Code.NotFound }, "a missing repository keeps the registry's NotFound");
  const other = await pullAll(c, { ref, plainHttp: true, snapshotter: "btrfs" }).catch((e: unknown) => e);
  t.match(other, { code: Code.NotFound, message: /snapshotter "btrfs"/ });

  const sub = c.client.service(EventsService).subscribe({ filters: ["topic~=^/images/"] }, c.o());
  const seen: string[] = [];
  const watching = (async () => {
    for await (const e of sub) {
      const ev = decodeEvent(e) as { name?: string } | undefined;
      seen.push(`${e.topic} ${ev?.name ?? "?"}`);
    }
  })().catch(() => {});
  // The subscription is live once a probe record's events come through.
  const probe = {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: `sha256:${"b".repeat(64)}`,
    size: 1,
  };
  for (let i = 0; i < 20 && !seen.includes("/images/delete probe"); i++) {
    await c.images.create({ image: { name: "probe", target: probe } }, c.o());
    await c.images.delete({ name: "probe" }, c.o());
    await new Promise((r) => setTimeout(r, 100));
  }
  t.ok(
    seen.includes("/images/create probe") && seen.includes("/images/delete probe"),
    "Images.Create/Delete publish",
  );
  seen.length = 0;
  const progress = await pullAll(c, { ref, plainHttp: true, unpack: true });
  await waitFor(() => seen.length > 0, { what: "an image event", timeoutMs: 5000 });
  t.same(seen, [`/images/create ${ref}`], "the pull published /images/create");
  const statuses = new Set(progress.map((p) => p.status));
  for (const s of ["resolving", "resolved", "done", "unpacking", "unpacked", "complete"])
    t.ok(statuses.has(s), `status ${s} seen`);
  const done = progress.at(-1)!;
  t.equal(done.status, "complete");
  t.equal(done.image?.name, ref, "the record is named by the normalized ref");
  const got = await c.images.get({ name: ref }, c.o());
  t.equal(got.image?.target.digest, done.image?.target.digest);
  t.equal((await c.images.list({ filters: [`name==${ref}`] }, c.o())).images.length, 1);

  const cfg = await c.tools.config({ name: ref }, c.o());
  t.equal(cfg.uid, 1000, "the image's User app → uid from its /etc/passwd");
  t.equal(cfg.gid, 1000);
  t.same(cfg.additionalGids, [1000, 2000], "primary gid first, then groups listing app");
  t.equal(JSON.parse(Buffer.from(cfg.config).toString()).config.User, "app");
  t.match(cfg.chainId, /^sha256:[0-9a-f]{64}$/);
  const st = await c.snapshots.stat({ snapshotter: "overlayfs", key: cfg.chainId }, c.o());
  t.equal(st.info.kind, 3, "the chain id is a committed snapshot");
  t.match(cfg.manifest?.digest, /^sha256:/);
  const rootUser = await c.tools.config({ name: ref, user: "0" }, c.o());
  t.same([rootUser.uid, rootUser.gid, rootUser.additionalGids], [0, 0, [0]]);
  const byNames = await c.tools.config({ name: ref, user: "app:extra" }, c.o());
  t.same([byNames.uid, byNames.gid], [1000, 2000]);
  const unknownUser = await c.tools.config({ name: ref, user: "nosuchuser" }, c.o()).catch((e: unknown) => e);
  t.match(unknownUser, { code: Code.NotFound, message: /nosuchuser.*\/etc\/passwd/ });
  const unknownImage = await c.tools
    .config({ name: "docker.io/library/nope:1" }, c.o())
    .catch((e: unknown) => e);
  t.match(unknownImage, { code: Code.NotFound });
  const views = (await collect(c.snapshots.list({ snapshotter: "overlayfs" }, c.o()))).filter((i) =>
    i.name.startsWith("tsrunc-view-"),
  );
  t.same(views, [], "Config left no view behind");

  for (const runtime of ["io.containerd.tsrunc.v2", "io.containerd.runc.v2"]) {
    const id = runtime.includes("tsrunc") ? "ours" : "goshim";
    const r = await runOn(
      c,
      env,
      id,
      cfg.chainId,
      runtime,
      ["/bin/sh", "-c", "cat /etc/greeting; ls /gone; id -u; id -G; exit 7"],
      cfg,
    );
    t.equal(r.status, 7, `${runtime}: exit status`);
    t.match(r.out, /hello from layer 2/, `${runtime}: the image's files`);
    t.match(r.out, /No such file or directory/, `${runtime}: the whiteout hides /gone`);
    t.match(r.out, /^1000$/m, `${runtime}: runs as app`);
    t.match(r.out, /^1000 2000$/m, `${runtime}: with its groups`);
    t.equal(r.mounts[0]?.type, "overlay");
    const mountinfo = readFileSync("/proc/self/mountinfo", "utf8");
    t.notOk(
      mountinfo.includes(join(rootOf(env), "snapshots")),
      `${runtime}: nothing of the snapshot is left mounted`,
    );
  }
  c.client.close();
  await watching;
  await env.finish(t);
});

t.test("a shim killed with the image's overlay mounted: the bundle's removal unmounts it", async (t) => {
  const env = await daemonEnv(t);
  await env.start();
  const c = await connectApi(env);
  t.teardown(() => c.client.close());
  await pullAll(c, { ref, plainHttp: true, unpack: true });
  const cfg = await c.tools.config({ name: ref, user: "0" }, c.o());
  for (const runtime of ["io.containerd.tsrunc.v2", "io.containerd.runc.v2"]) {
    const id = runtime.includes("tsrunc") ? "dies" : "dies-go";
    await runOn(c, env, id, cfg.chainId, runtime, ["/bin/sleep", "1000"], cfg, { detach: true });
    const bundle = join(env.state, env.namespace, id);
    const mounted = () => readFileSync("/proc/self/mountinfo", "utf8").includes(join(bundle, "rootfs"));
    t.ok(mounted(), `${runtime}: the overlay is mounted on the bundle's rootfs`);
    const pid = (await c.tasks.get({ containerId: id }, c.o())).process?.pid ?? 0;
    const shimPid = shimPidOf(env.namespace, id);
    process.kill(shimPid, "SIGKILL");
    process.kill(pid, "SIGKILL");
    await waitFor(async () => (await c.tasks.get({ containerId: id }, c.o())).process?.status === 3, {
      what: `${runtime}: the task seen stopped`,
      timeoutMs: 20_000,
    });
    await waitFor(() => !mounted(), { what: `${runtime}: the rootfs unmounted`, timeoutMs: 10_000 });
    await c.tasks.delete({ containerId: id }, c.o()).catch(() => {});
    await c.containers.delete({ id }, c.o());
    await c.snapshots.remove({ snapshotter: "overlayfs", key: id }, c.o());
    t.notOk(
      readFileSync("/proc/self/mountinfo", "utf8").includes(join(rootOf(env), "snapshots")),
      `${runtime}: nothing left mounted`,
    );
  }
  await env.finish(t);
});

/** The pid of the shim serving `id` in `namespace` (from /proc: the Go shim writes no shim.pid in the bundle). */
function shimPidOf(namespace: string, id: string): number {
  for (const p of readdirSync("/proc")) {
    if (!/^[0-9]+$/.test(p)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0");
    } catch {
      continue;
    }
    const at = (flag: string) => argv[argv.indexOf(flag) + 1];
    if (/containerd-shim/.test(argv[0] ?? "") || argv.some((a) => a.includes("containerd-shim-tsrunc-v2"))) {
      if (at("-namespace") === namespace && at("-id") === id) return Number(p);
    }
  }
  throw new Error(`no shim for ${namespace}/${id}`);
}

async function collect<T extends { info: unknown[] }>(it: AsyncIterable<T>): Promise<T["info"]> {
  const out: T["info"] = [];
  for await (const m of it) out.push(...m.info);
  return out;
}

t.test("Images.Delete and Prune collect blobs and snapshots, never a running container's", async (t) => {
  const env = await daemonEnv(t);
  await env.start();
  const c = await connectApi(env);
  t.teardown(() => c.client.close());
  await pullAll(c, { ref, plainHttp: true, unpack: true });
  const cfg = await c.tools.config({ name: ref }, c.o());
  t.ok(blobCount(env) >= 4, "index/manifest, config and two layers stored");
  await runOn(c, env, "keeper", cfg.chainId, "io.containerd.tsrunc.v2", ["/bin/sleep", "1000"], cfg, {
    detach: true,
  });

  await c.images.delete({ name: ref, sync: true }, c.o());
  t.equal(blobCount(env), 0, "every blob of the deleted image collected");
  const left = await collect(c.snapshots.list({ snapshotter: "overlayfs" }, c.o()));
  t.same(
    left.map((i) => i.name).sort(),
    ["keeper", cfg.chainId, left.find((i) => i.name !== "keeper" && i.name !== cfg.chainId)?.name].sort(),
    "the running container's snapshot and its parents stay",
  );
  const ps = await c.tasks.get({ containerId: "keeper" }, c.o());
  t.equal(ps.process?.status, 2, "still running");

  await c.tasks.kill({ containerId: "keeper", signal: 9 }, c.o());
  await c.tasks.wait({ containerId: "keeper" }, c.o());
  await c.tasks.delete({ containerId: "keeper" }, c.o());
  await c.containers.delete({ id: "keeper" }, c.o());
  // As ctr, the client removes the snapshot; one left behind (a run that crashed before its
  // container record, or after deleting it) is kept a minute, then collected: here by the boot GC.
  const young = await c.tools.prune({}, c.o());
  t.equal(young.snapshotsRemoved, 0, "an unreferenced active snapshot younger than a minute is kept");
  await c.snapshots.stat({ snapshotter: "overlayfs", key: "keeper" }, c.o());
  c.client.close();
  await env.stop();
  await env.start();
  const c2 = await connectApi(env);
  t.teardown(() => c2.client.close());
  t.same(
    await collect(c2.snapshots.list({ snapshotter: "overlayfs" }, c2.o())),
    [],
    "the boot GC collected the orphan and its parents",
  );
  t.match(env.log(), /"snapshotsRemoved":3[,}].*"boot":true/, "three snapshots, at boot");

  await pullAll(c2, { ref, plainHttp: true, unpack: true });
  await c2.images.delete({ name: ref }, c2.o());
  await waitFor(() => blobCount(env) === 0, {
    what: "a background GC after Images.Delete without sync",
    timeoutMs: 10_000,
  });
  await pullAll(c2, { ref, plainHttp: true, unpack: true });
  const kept = await c2.tools.prune({}, c2.o());
  t.same([kept.blobsRemoved, kept.snapshotsRemoved], [0, 0], "Prune keeps what an image record holds");
  const all = await c2.tools.prune({ all: true }, c2.o());
  t.ok(
    all.blobsRemoved >= 4 && all.snapshotsRemoved === 2 && all.bytesFreed > 0,
    `Prune all: ${JSON.stringify(all)}`,
  );
  t.same((await c2.images.list({}, c2.o())).images, []);
  await env.finish(t);
});

t.test("SIGKILL mid-pull, restart, the same pull resumes and leaves nothing behind", async (t) => {
  const dir = await tempDir(t as never, "tsrunc-dimg-big-");
  const fixture = await buildFixture(dir, 96 * 1024 * 1024);
  const bigRef = `${registry.host}/tsr/big:1`;
  await pushTag(fixture.layout, "single", bigRef);
  const big = fixture.single.layers.at(-1)!;

  const env = await daemonEnv(t);
  await env.start();
  let c = await connectApi(env);
  let killed = false;
  const kill = () => {
    if (killed) return;
    killed = true;
    void env.kill();
  };
  const first = (async () => {
    for await (const m of c.tools.pull({ ref: bigRef, plainHttp: true, unpack: true }, c.o())) {
      if (m.status !== "downloading" || m.digest !== big.digest) continue;
      // Kill once bytes of the big layer are on disk (a fast machine may send no second
      // message; a loaded one may not have written any 40 ms after the first: then there is
      // nothing to resume and the pull rightly starts again at 0).
      if (m.offset > 0) kill();
      else
        void waitFor(() => ingestBytes(env, big.digest) > 0, {
          what: "bytes of the big layer on disk",
          timeoutMs: 30_000,
        })
          .then(kill)
          .catch(kill);
    }
  })().catch((e: unknown) => e);
  await first;
  await env.exited();
  t.ok(killed, "killed while the big layer was downloading");
  c.client.close();
  t.ok(ingestCount(env) >= 1, "an ingest was left");

  await env.start();
  c = await connectApi(env);
  t.ok(ingestCount(env) >= 1, "boot kept the interrupted pull's ingest (its durable lease)");
  const began = Date.now();
  const progress = await pullAll(c, { ref: bigRef, plainHttp: true, unpack: true });
  const tookMs = Date.now() - began;
  const bigMessages = progress.filter((p) => p.digest === big.digest && p.status === "downloading").length;
  t.ok(
    bigMessages <= tookMs / 100 + 3,
    `progress throttled: ${bigMessages} messages for the big layer in ${tookMs} ms`,
  );
  const firstBig = progress.find(
    (p) => p.digest === big.digest && (p.status === "downloading" || p.status === "exists"),
  );
  t.ok(
    firstBig && (firstBig.status === "exists" || firstBig.offset > 0),
    `the big layer resumed (${JSON.stringify(firstBig)})`,
  );
  t.equal(progress.at(-1)?.status, "complete");
  t.equal(ingestCount(env), 0, "no ingest left");
  const snaps = await collect(c.snapshots.list({ snapshotter: "overlayfs" }, c.o()));
  t.ok(
    snaps.every((s) => s.kind === 3),
    "only committed chain snapshots, no unpack's active one",
  );
  t.equal(snaps.length, 3);

  // Killed while unpacking: the unpack's active snapshot goes at boot, the next pull completes.
  await c.images.delete({ name: bigRef, sync: true }, c.o());
  t.same(await collect(c.snapshots.list({ snapshotter: "overlayfs" }, c.o())), [], "all collected");
  let killedUnpacking = false;
  await (async () => {
    for await (const m of c.tools.pull({ ref: bigRef, plainHttp: true, unpack: true }, c.o())) {
      if (m.status === "unpacking" && m.digest === big.digest && !killedUnpacking) {
        killedUnpacking = true;
        await new Promise((r) => setTimeout(r, 50));
        await env.kill();
      }
    }
  })().catch(() => {});
  t.ok(killedUnpacking, "killed while the big layer was being unpacked");
  c.client.close();
  await env.start();
  c = await connectApi(env);
  const afterBoot = await collect(c.snapshots.list({ snapshotter: "overlayfs" }, c.o()));
  t.same(
    afterBoot.filter((s) => s.kind !== 3),
    [],
    "no active snapshot of the interrupted unpack after boot",
  );
  t.match(env.log(), /"snapshotsRemoved":[1-9][0-9]*,.*"boot":true/, "the boot GC removed it");
  t.equal((await pullAll(c, { ref: bigRef, plainHttp: true, unpack: true })).at(-1)?.status, "complete");
  t.equal((await collect(c.snapshots.list({ snapshotter: "overlayfs" }, c.o()))).length, 3);
  t.equal(ingestCount(env), 0);
  c.client.close();
  await env.finish(t);
});

t.test("GC while pulling: Prune in a loop never takes what the pull is making", async (t) => {
  const dir = await tempDir(t as never, "tsrunc-dimg-race-");
  const fixture = await buildFixture(dir, 48 * 1024 * 1024);
  const raceRef = `${registry.host}/tsr/race:1`;
  await pushTag(fixture.layout, "single", raceRef);
  const env = await daemonEnv(t);
  await env.start();
  const c = await connectApi(env);
  t.teardown(() => c.client.close());
  let pulling = true;
  let prunes = 0;
  const pruner = (async () => {
    while (pulling) {
      const r = await c.tools.prune({}, c.o());
      const collected = r.blobsRemoved + r.snapshotsRemoved;
      if (collected !== 0) {
        t.fail(`a prune during the pull collected ${JSON.stringify(r)}`);
        pulling = false;
      }
      prunes++;
      await new Promise((res) => setTimeout(res, 20));
    }
  })();
  const progress = await pullAll(c, { ref: raceRef, plainHttp: true, unpack: true }).finally(() => {
    pulling = false;
  });
  await pruner;
  t.ok(prunes >= 3, `${prunes} prunes ran during the pull`);
  t.equal(progress.at(-1)?.status, "complete");
  const cfg = await c.tools.config({ name: raceRef }, c.o());
  t.equal((await c.snapshots.stat({ snapshotter: "overlayfs", key: cfg.chainId }, c.o())).info.kind, 3);
  const after = await c.tools.prune({}, c.o());
  t.same([after.blobsRemoved, after.snapshotsRemoved], [0, 0], "the image is whole: nothing to collect");
  t.equal(blobCount(env), 2 + fixture.single.layers.length, "manifest, config and every layer");
  await env.finish(t);
});

t.test("Import OCI and docker archives through the client stream; Export re-imported by ctr", async (t) => {
  const ociArchive = join(base, "img-oci.tar");
  const dockerArchive = join(base, "img-docker.tar");
  await run("skopeo", [
    "--insecure-policy",
    "copy",
    `oci:${layout}:img`,
    `oci-archive:${ociArchive}:tsrunc.test/img:1`,
  ]);
  await run("skopeo", [
    "--insecure-policy",
    "copy",
    `oci:${layout}:img`,
    `docker-archive:${dockerArchive}:tsrunc.test/img:2`,
  ]);
  const env = await daemonEnv(t);
  await env.start();
  const c = await connectApi(env);
  t.teardown(() => c.client.close());

  const importFile = async (file: string, options: Partial<imagetools.ImportOptions>) => {
    const call = c.tools.import(c.o());
    const data = readFileSync(file);
    for (let off = 0, first = true; off < data.length; off += 1024 * 1024, first = false)
      await call.send({ data: data.subarray(off, off + 1024 * 1024), ...(first ? { options } : {}) });
    call.closeSend();
    return call.response;
  };
  const oci = await importFile(ociArchive, { unpack: true });
  t.same(
    oci.images.map((i) => i.name),
    ["tsrunc.test/img:1"],
  );
  const docker = await importFile(dockerArchive, { unpack: true });
  t.same(
    docker.images.map((i) => i.name),
    ["tsrunc.test/img:2"],
  );
  const cfg = await c.tools.config({ name: "tsrunc.test/img:2" }, c.o());
  t.equal(cfg.uid, 1000);
  const r = await runOn(
    c,
    env,
    "imported",
    cfg.chainId,
    "io.containerd.tsrunc.v2",
    ["/bin/cat", "/etc/greeting"],
    cfg,
  );
  t.equal(r.out, "hello from layer 2\n");

  const exported = join(env.root.path, "export.tar");
  const chunks: Buffer[] = [];
  for await (const m of c.tools.export({ names: ["tsrunc.test/img:1"] }, c.o()))
    chunks.push(Buffer.from(m.data));
  writeFileSync(exported, Buffer.concat(chunks));
  const cd = await startContainerd(t);
  const imp = await cd.ctr(["images", "import", exported], { timeout: 120_000 });
  t.equal(imp.exitCode, 0, `ctr images import: ${imp.stdout} ${imp.stderr}`);
  const ls = await cd.ctr(["images", "ls", "-q"]);
  t.match(ls.stdout, /^tsrunc\.test\/img:1$/m);
  const cr = await cd.ctr(["run", "--rm", "tsrunc.test/img:1", "c1", "/bin/cat", "/etc/greeting"]);
  t.equal(cr.exitCode, 0, cr.stderr);
  t.match(cr.stdout, /hello from layer 2/);

  const nf = await (async () => {
    for await (const _ of c.tools.export({ names: ["nope:1"] }, c.o())) {
      // nothing
    }
  })().catch((e: unknown) => e);
  t.match(nf, { code: Code.NotFound });
  await env.finish(t);
});

t.test("a layer escaping its snapshot: a clear error, the daemon keeps serving, nothing left", async (t) => {
  const { createHash } = await import("node:crypto");
  const sha = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;
  const env = await daemonEnv(t);
  await env.start();
  const c = await connectApi(env);
  t.teardown(() => c.client.close());
  const victim = `/tmp/tsrunc-victim-${process.pid}`;
  t.teardown(() => rmSync(victim, { force: true }));
  const layer = makeTar([
    { name: "ok", data: Buffer.from("fine") },
    { name: `../../../../../../../../../..${victim}`, data: Buffer.from("escaped") },
  ]);
  const config = Buffer.from(
    JSON.stringify({
      architecture: { x64: "amd64", arm64: "arm64" }[process.arch as "x64"] ?? process.arch,
      os: "linux",
      rootfs: { type: "layers", diff_ids: [sha(layer)] },
      config: {},
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: sha(config),
        size: config.length,
      },
      layers: [
        { mediaType: "application/vnd.oci.image.layer.v1.tar", digest: sha(layer), size: layer.length },
      ],
    }),
  );
  const dir = join(env.root.path, "hostile");
  mkdirSync(join(dir, "blobs/sha256"), { recursive: true });
  for (const b of [layer, config, manifest]) writeFileSync(join(dir, "blobs/sha256", sha(b).slice(7)), b);
  writeFileSync(join(dir, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest: sha(manifest),
          size: manifest.length,
          annotations: {
            "io.containerd.image.name": "tsrunc.test/hostile:1",
            "org.opencontainers.image.ref.name": "bad",
          },
        },
      ],
    }),
  );
  const archive = join(env.root.path, "hostile.tar");
  await run("tar", ["-C", dir, "-cf", archive, "."]);
  const call = c.tools.import(c.o());
  await call.send({ data: readFileSync(archive), options: { unpack: true } });
  call.closeSend();
  const err = await call.response.catch((e: unknown) => e);
  t.match(err, { code: Code.InvalidArgument, message: /victim|\.\./ }, "refused, naming the entry");
  t.same((await c.images.list({}, c.o())).images, [], "no record");
  t.same(await collect(c.snapshots.list({ snapshotter: "overlayfs" }, c.o())), [], "no snapshot");
  await waitFor(() => blobCount(env) === 0, {
    what: "the failed import's blobs collected",
    timeoutMs: 10_000,
  });
  t.equal(ingestCount(env), 0);
  t.throws(() => readFileSync(victim), "nothing written outside");
  const pulled = await pullAll(c, { ref, plainHttp: true });
  t.equal(pulled.at(-1)?.status, "complete", "the daemon keeps serving");
  await c.images.delete({ name: ref, sync: true }, c.o());

  // The same layer from a registry: the pull fails, drops its lease and collects what it fetched.
  const hostileRef = `${registry.host}/tsr/hostile:1`;
  await pushTag(dir, "bad", hostileRef);
  const perr = await pullAll(c, { ref: hostileRef, plainHttp: true, unpack: true }).catch((e: unknown) => e);
  t.match(
    perr,
    { code: Code.InvalidArgument, message: /victim|\.\./ },
    "the pull is refused, naming the entry",
  );
  t.same((await c.images.list({}, c.o())).images, [], "no record");
  t.same(await collect(c.snapshots.list({ snapshotter: "overlayfs" }, c.o())), [], "no snapshot");
  await waitFor(() => blobCount(env) === 0, { what: "the failed pull's blobs collected", timeoutMs: 10_000 });
  t.equal(ingestCount(env), 0);
  t.throws(() => readFileSync(victim), "nothing written outside");
  await env.finish(t);
});

t.test("TLS with a CA given as PEM bytes, basic auth: through the daemon", async (t) => {
  const dir = await tempDir(t as never, "tsrunc-dimg-tls-");
  const ca = await makeCa(dir);
  const caDir = join(dir, "cas");
  mkdirSync(caDir);
  writeFileSync(join(caDir, "ca.crt"), readFileSync(ca.caCert));
  const htpasswd = await makeHtpasswd(dir, "alice", "s3cret:x");
  const reg = await startRegistry(t as never, {
    rootdir: join(dir, "data"),
    tls: { certificate: ca.serverCert, key: ca.serverKey },
    htpasswd,
  });
  const tlsRef = `${reg.host}/tsr/img:1`;
  await pushTag(layout, "img", tlsRef, ["--dest-cert-dir", caDir, "--dest-creds", "alice:s3cret:x"]);
  const env = await daemonEnv(t);
  await env.start();
  const c = await connectApi(env);
  t.teardown(() => c.client.close());
  const noCa = await pullAll(c, { ref: tlsRef, username: "alice", password: "s3cret:x" }).catch(
    (e: unknown) => e,
  );
  t.ok(noCa instanceof Error && /certificate/i.test(noCa.message), `no CA: ${String(noCa)}`);
  const caPem = readFileSync(ca.caCert);
  for (const bad of [
    Buffer.from("garbage"),
    Buffer.from("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
  ])
    t.match(await pullAll(c, { ref: tlsRef, caPem: bad }).catch((e: unknown) => e), {
      code: Code.InvalidArgument,
      message: /ca_pem/,
    });
  const noAuth = await pullAll(c, { ref: tlsRef, caPem }).catch((e: unknown) => e);
  t.match(noAuth, { code: Code.Unauthenticated }, "no credentials: the registry's 401");
  const ok = await pullAll(c, { ref: tlsRef, caPem, username: "alice", password: "s3cret:x", unpack: true });
  t.equal(ok.at(-1)?.image?.name, tlsRef);
  await env.finish(t);
});

t.test("Snapshots and Images APIs: namespaces apart, labels, filters, usage, errors", async (t) => {
  const env = await daemonEnv(t);
  await env.start();
  const c = await connectApi(env);
  t.teardown(() => c.client.close());
  const other = { metadata: { "containerd-namespace": `${env.namespace}b` }, timeoutMs: 30_000 };
  const sn = "overlayfs";

  const m = await c.snapshots.prepare({ snapshotter: "", key: "base", labels: { a: "1" } }, c.o());
  t.equal(m.mounts[0]?.type, "bind", "a parentless active snapshot is a bind mount");
  writeFileSync(join(m.mounts[0]!.source, "f"), "data");
  await c.snapshots.commit({ snapshotter: sn, name: "base-c", key: "base" }, c.o());
  const st = await c.snapshots.stat({ snapshotter: sn, key: "base-c" }, c.o());
  t.same([st.info.kind, st.info.labels], [3, { a: "1" }], "committed, labels carried");
  const view = await c.snapshots.view({ snapshotter: sn, key: "v", parent: "base-c" }, c.o());
  t.same(view.mounts[0]?.options, ["ro", "rbind"], "a one-layer view: a read-only bind");
  const act = await c.snapshots.prepare({ snapshotter: sn, key: "act", parent: "base-c" }, c.o());
  t.equal(act.mounts[0]?.type, "overlay");
  t.same((await c.snapshots.mounts({ snapshotter: sn, key: "act" }, c.o())).mounts, act.mounts);
  const up = await c.snapshots.update(
    {
      snapshotter: sn,
      info: { name: "act", labels: { x: "y", z: "1" } },
      updateMask: { paths: ["labels.x"] },
    },
    c.o(),
  );
  t.same(up.info.labels, { x: "y" }, "only the masked label");
  const listed = await collect(
    c.snapshots.list({ snapshotter: sn, filters: ["kind==active", "labels.a==1"] }, c.o()),
  );
  t.same(listed.map((i) => i.name).sort(), ["act", "base-c"]);
  t.ok((await c.snapshots.usage({ snapshotter: sn, key: "base-c" }, c.o())).size > 0);
  t.match(await c.snapshots.remove({ snapshotter: sn, key: "base-c" }, c.o()).catch((e: unknown) => e), {
    code: Code.FailedPrecondition,
  });
  t.match(
    await c.snapshots.stat({ snapshotter: sn, key: "act" }, other).catch((e: unknown) => e),
    { code: Code.NotFound },
    "another namespace does not see it",
  );
  t.same(await collect(c.snapshots.list({ snapshotter: sn }, other)), []);
  t.match(await c.snapshots.prepare({ snapshotter: "native", key: "k" }, c.o()).catch((e: unknown) => e), {
    code: Code.NotFound,
  });
  await c.snapshots.prepare({ snapshotter: sn, key: "r" }, c.o());
  await c.snapshots.commit(
    { snapshotter: sn, name: "rooted", key: "r", labels: { "containerd.io/gc.root": "1" } },
    c.o(),
  );
  await c.snapshots.prepare({ snapshotter: sn, key: "r2" }, c.o());
  await c.snapshots.commit({ snapshotter: sn, name: "unrooted", key: "r2" }, c.o());
  await c.tools.prune({}, c.o());
  await c.snapshots.stat({ snapshotter: sn, key: "rooted" }, c.o());
  t.pass("a snapshot labelled containerd.io/gc.root survives Prune");
  t.match(
    await c.snapshots.stat({ snapshotter: sn, key: "unrooted" }, c.o()).catch((e: unknown) => e),
    {
      code: Code.NotFound,
    },
    "an unreferenced committed snapshot does not",
  );
  for (const k of ["act", "v", "base-c", "rooted"])
    await c.snapshots.remove({ snapshotter: sn, key: k }, c.o());
  await c.snapshots.cleanup({ snapshotter: sn }, c.o());

  const target = {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: `sha256:${"a".repeat(64)}`,
    size: 7,
  };
  await c.images.create({ image: { name: "x/y:1", target, labels: { l: "1" } } }, c.o());
  t.match(await c.images.create({ image: { name: "x/y:1", target } }, c.o()).catch((e: unknown) => e), {
    code: Code.AlreadyExists,
  });
  t.same(
    (await c.images.list({ filters: ["labels.l==1"] }, c.o())).images.map((i) => i.name),
    ["x/y:1"],
  );
  t.same((await c.images.list({}, other)).images, [], "records are namespaced");
  const u = await c.images.update(
    { image: { name: "x/y:1", labels: { l: "2" } }, updateMask: { paths: ["labels"] } },
    c.o(),
  );
  t.same([u.image?.labels, u.image?.target.digest], [{ l: "2" }, target.digest]);
  await c.images.delete({ name: "x/y:1", sync: true }, c.o());
  t.match(await c.images.get({ name: "x/y:1" }, c.o()).catch((e: unknown) => e), { code: Code.NotFound });
  await env.finish(t);
});

t.test("hostile API inputs: clear codes, nothing left", async (t) => {
  const env = await daemonEnv(t);
  await env.start();
  const c = await connectApi(env);
  t.teardown(() => c.client.close());
  const empty = c.tools.import(c.o());
  empty.closeSend();
  t.match(await empty.response.catch((e: unknown) => e), {
    code: Code.InvalidArgument,
    message: /no archive/,
  });
  const junk = c.tools.import(c.o());
  await junk.send({ data: Buffer.alloc(1024 * 1024, 7), options: { unpack: true } });
  junk.closeSend();
  const junkErr = await junk.response.catch((e: unknown) => e);
  t.ok(
    junkErr instanceof Error && (junkErr as { code?: number }).code === Code.InvalidArgument,
    `junk: ${String(junkErr)}`,
  );
  t.match(await pullAll(c, { ref: "" }).catch((e: unknown) => e), { code: Code.InvalidArgument });
  t.match(await pullAll(c, { ref, plainHttp: true, platform: "linux/amd64/v9/x" }).catch((e: unknown) => e), {
    code: Code.InvalidArgument,
  });
  const ghost = {
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest: `sha256:${"c".repeat(64)}`,
    size: 10,
  };
  await c.images.create({ image: { name: "ghost:1", target: ghost } }, c.o());
  t.match(await c.tools.config({ name: "ghost:1" }, c.o()).catch((e: unknown) => e), { code: Code.NotFound });
  const exp = await (async () => {
    for await (const _ of c.tools.export({ names: ["ghost:1"] }, c.o())) {
      // nothing
    }
  })().catch((e: unknown) => e);
  t.match(exp, { code: Code.NotFound });
  t.match(
    await c.images
      .create({ image: { name: "big:1", target: ghost, labels: { k: "v".repeat(5000) } } }, c.o())
      .catch((e: unknown) => e),
    {
      code: Code.InvalidArgument,
    },
  );
  // Many snapshots with labels near the limit: List splits them over messages under 4 MiB.
  for (let i = 0; i < 40; i++) {
    await c.snapshots.prepare(
      { snapshotter: "overlayfs", key: `s${i}`, labels: { big: "x".repeat(60_000) } },
      c.o(),
    );
  }
  let messages = 0;
  let listed = 0;
  for await (const m of c.snapshots.list({ snapshotter: "overlayfs" }, c.o())) {
    messages++;
    listed += m.info.length;
  }
  t.same([listed, messages > 1], [40, true], `${listed} snapshots in ${messages} messages`);
  for (let i = 0; i < 40; i++) await c.snapshots.remove({ snapshotter: "overlayfs", key: `s${i}` }, c.o());
  await c.images.delete({ name: "ghost:1", sync: true }, c.o());
  t.equal(blobCount(env), 0);
  t.equal(ingestCount(env), 0);
  await env.finish(t);
});
