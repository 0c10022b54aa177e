// Message-level fuzzing of the live shim: every Task API method gets structured hostile requests,
// mutated and wrong-typed bodies, protobuf soup, random bytes, huge repeated fields and deeply
// nested Any, all in well-formed ttrpc envelopes. Each must be answered, promptly, with a proper
// status (OK or one of containerd's errdefs codes; Unknown only with runc's own message), the
// shim must stay up, and nothing outside the bundles may change: a sibling bundle that is a
// symlink must not be written through, a regular file must stay as it was. Afterwards every
// container the campaign made is removed through the API, and the shim must be back to its
// baseline (fds, zombies, RSS, mounts, sockets, runc state).
import * as fs from "node:fs";
import * as path from "node:path";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import { execa } from "execa";
import t from "tap";
import { readMountInfo } from "../helpers/cleanup.js";
import { campaign, executed, fileBudgetMs } from "./lib/campaign.js";
import { snapshot } from "./lib/health.js";
import { liveShim, SENTINEL } from "./lib/live-shim.js";
import { statusProblems } from "./lib/shim-profile.js";
import { taskInputArb } from "./lib/task-arbs.js";
import { fixtures, portableTaskInput, removeAll, runTaskInput, untouched } from "./lib/task-fixtures.js";

const BUDGET = fileBudgetMs(12000);

t.test("hostile Task API requests against the live shim", async (t) => {
  const shim = await liveShim(t);
  const fx = await fixtures(shim);
  const root = fx.root;
  const mountsBefore = readMountInfo().filter((m) => m.mountPoint.startsWith(root)).length;
  shim.baseline = snapshot(shim.pid);
  const byMethod: Record<string, Record<number, number>> = {};
  const { client } = await shim.connect();
  await campaign(t, {
    target: "task-messages",
    arb: taskInputArb(fx),
    ms: BUDGET * 0.8,
    shrinkMs: 20000,
    run: async (input) => {
      const r = await runTaskInput(client, input);
      const counts = byMethod[input.method] ?? {};
      byMethod[input.method] = counts;
      counts[r.code] = (counts[r.code] ?? 0) + 1;
      if (!snapshot(shim.pid).alive) r.problems.push("the shim died");
      const touched = untouched(fx);
      if (touched) r.problems.push(`${input.method} (${input.how}): ${touched}`);
      return r.problems;
    },
    toJson: (input) => portableTaskInput(fx, shim.env.namespace, input),
  });
  t.comment(`answers by method and code: ${JSON.stringify(byMethod)}`);
  await client.close();

  t.same(await removeAll(shim, fx.ids), [], "every container of the campaign removed through the API");
  const runcRoot = path.join(root, "runc", shim.env.namespace);
  const left = await execa("runc", ["--root", runcRoot, "list", "-q"], { reject: false });
  t.same(String(left.stdout).split("\n").filter(Boolean), [SENTINEL], "runc knows only the sentinel");
  const mountsAfter = readMountInfo().filter((m) => m.mountPoint.startsWith(root));
  t.equal(
    mountsAfter.length,
    mountsBefore,
    `no mount left (${mountsAfter.map((m) => m.mountPoint).join(" ")})`,
  );
  t.same(await shim.health(), [], "the shim is healthy after the campaign");
  t.equal(untouched(fx), undefined, "nothing outside the bundles was touched");
});

t.test("directed: bundles and stdio paths of every kind", async (t) => {
  const shim = await liveShim(t, { sentinel: false });
  const fx = await fixtures(shim);
  const b = fx.bundlesDir;
  const code = (p: Promise<unknown>) => p.then(() => 0).catch((e: TtrpcError) => e.code);
  for (const [what, id, bundle, want] of [
    [
      "a sibling that is a symlink to a directory outside",
      "siblink",
      path.join(b, "siblink"),
      Code.InvalidArgument,
    ],
    ["a sibling that is a regular file", "sibfile", path.join(b, "sibfile"), Code.InvalidArgument],
    ["a sibling that does not exist", "sibgone", path.join(b, "sibgone"), Code.NotFound],
    ["a sibling named after another id", "sib2", path.join(b, "sib1"), Code.InvalidArgument],
    ["a path outside the bundles", "sib1", "/etc", Code.InvalidArgument],
    ["a relative path", "sib1", "sib1", Code.InvalidArgument],
    ["a path through ..", "sib1", `${b}/sib1/../../x/sib1`, Code.InvalidArgument],
    ["an id with ..", "../x", path.join(b, "..", "x"), Code.InvalidArgument],
    ["an id of 10,000 characters", "x".repeat(10000), path.join(b, "x".repeat(10000)), Code.InvalidArgument],
    ["an id with a NUL byte", "a\0b", path.join(b, "a\0b"), Code.InvalidArgument],
    ["a unicode id", "日本", path.join(b, "日本"), Code.InvalidArgument],
  ] as const) {
    t.equal(await code(shim.task.create({ id, bundle })), want, `Create with ${what}`);
  }
  const sib = path.join(b, "sib1");
  for (const [what, p, want] of [
    ["a regular file", path.join(fx.root, "fx", "file"), Code.InvalidArgument],
    ["a directory", path.join(fx.root, "fx", "dir"), Code.InvalidArgument],
    ["a symlink to a fifo", path.join(fx.root, "fx", "link-fifo"), Code.InvalidArgument],
    ["a missing path", path.join(fx.root, "fx", "missing"), Code.NotFound],
    ["a relative path", "fx/f1", Code.InvalidArgument],
    ["/dev/null", "/dev/null", Code.InvalidArgument],
  ] as const) {
    t.equal(
      await code(shim.task.create({ id: "sib1", bundle: sib, stdout: p })),
      want,
      `stdout that is ${what}`,
    );
  }
  t.equal(untouched(fx), undefined, "nothing was written through the symlink or into the file");
  t.notOk(fs.existsSync(path.join(b, "sibgone")), "no bundle directory was made for a missing one");
  t.same(await removeAll(shim, fx.ids), [], "nothing to remove");
  t.same(await shim.health(), [], "healthy");
});

t.test("directed: an exec spec nested 20,000 deep, started", async (t) => {
  const shim = await liveShim(t, { sentinel: false });
  const spec = {
    typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Process",
    value: Buffer.from(
      `{"args":["/bin/true"],"cwd":"/","user":{"uid":0,"gid":0},"x":${"[".repeat(20000)}1${"]".repeat(20000)}}`,
    ),
  };
  await shim.task.create({ id: "fz", bundle: shim.bundle });
  await shim.task.start({ id: "fz" });
  const code = (p: Promise<unknown>) => p.then(() => 0).catch((e: TtrpcError) => e);
  const exec = await code(shim.task.exec({ id: "fz", execId: "deep", spec }));
  t.ok(
    exec === 0 || (exec instanceof TtrpcError && exec.code === Code.InvalidArgument),
    `Exec: ${String(exec)}`,
  );
  if (exec === 0) {
    const start = await code(shim.task.start({ id: "fz", execId: "deep" }));
    const problems =
      start === 0 ? [] : statusProblems("Start", (start as TtrpcError).code, (start as TtrpcError).message);
    t.same(problems, [], `Start of the exec answers properly (${String(start)})`);
    await shim.task.wait({ id: "fz", execId: "deep" }, { timeoutMs: 5000 }).catch(() => {});
    await shim.task.delete({ id: "fz", execId: "deep" }).catch(() => {});
  }
  t.same(await removeAll(shim, ["fz"]), [], "removed");
  t.same(await shim.health(), [], "healthy");
});

t.teardown(() => {
  for (const [k, v] of Object.entries(executed)) t.comment(`inputs executed: ${k} ${v}`);
});
