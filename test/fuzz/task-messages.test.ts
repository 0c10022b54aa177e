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
import { type LiveShim, liveShim, SENTINEL } from "./lib/live-shim.js";
import { statusProblems, TASK } from "./lib/shim-profile.js";
import { type Fixtures, taskInputArb } from "./lib/task-arbs.js";

const BUDGET = fileBudgetMs(12000);

async function fixtures(shim: LiveShim): Promise<Fixtures> {
  const root = shim.env.root.path;
  const fx = path.join(root, "fx");
  const outside = path.join(root, "outside");
  fs.mkdirSync(fx);
  fs.mkdirSync(outside);
  fs.mkdirSync(path.join(fx, "dir"));
  fs.writeFileSync(path.join(fx, "file"), "regular file\n");
  const fifos = ["f1", "f2", "f3"].map((n) => path.join(fx, n));
  await execa("mkfifo", [...fifos, path.join(outside, "fifo")]);
  fs.symlinkSync(fifos[0]!, path.join(fx, "link-fifo"));
  fs.symlinkSync(path.join(fx, "dir"), path.join(fx, "link-dir"));
  // Siblings of the shim's bundle: a real one, a regular file, a symlink to a directory outside,
  // an empty directory, and one that does not exist.
  await shim.env.bundle("sib1", ["/bin/sleep", "100000"]);
  const b = shim.bundlesDir;
  fs.writeFileSync(path.join(b, "sibfile"), "not a bundle\n");
  fs.symlinkSync(outside, path.join(b, "siblink"));
  fs.mkdirSync(path.join(b, "sibnocfg"));
  const paths = [
    shim.bundle,
    ...["sib1", "sibfile", "siblink", "sibnocfg", "sibgone"].map((n) => path.join(b, n)),
    `${b}/sib1/../fz`,
    `${b}//fz/`,
    `${b}/../x`,
    b,
    "/etc",
    "/",
    "/dev/null",
    "/proc/self/fd/0",
    "relative/bundle",
    "",
    "x".repeat(5000),
    "/tmp/../etc",
    path.join(fx, "file"),
    path.join(fx, "dir"),
    path.join(fx, "link-fifo"),
    path.join(fx, "link-dir"),
    path.join(fx, "missing"),
    outside,
    path.join(outside, "fifo"),
    ...fifos,
  ];
  return {
    root,
    bundle: shim.bundle,
    bundlesDir: b,
    paths,
    fifos: [...fifos, path.join(outside, "fifo")],
    ids: ["fz", "sib1", "sibfile", "siblink", "sibnocfg", "sibgone", "A_b.c-d"],
  };
}

/** What must not change during the campaign: the symlinked directory and the regular file. */
function untouched(fx: Fixtures): string | undefined {
  const outside = fs.readdirSync(path.join(fx.root, "outside")).sort();
  if (outside.join(",") !== "fifo")
    return `written through a symlinked bundle: ${path.join(fx.root, "outside")} holds ${outside.join(", ")}`;
  const st = fs.lstatSync(path.join(fx.bundlesDir, "sibfile"));
  if (!st.isFile() || fs.readFileSync(path.join(fx.bundlesDir, "sibfile"), "utf8") !== "not a bundle\n")
    return "the regular file beside the bundles changed";
  if (!fs.lstatSync(path.join(fx.bundlesDir, "siblink")).isSymbolicLink())
    return "the symlinked bundle was replaced";
  return undefined;
}

/** Removes every container and exec the campaign left, through the API. */
async function removeAll(shim: LiveShim, ids: string[]): Promise<string[]> {
  const problems: string[] = [];
  const opts = { timeoutMs: 15000 };
  for (const id of ids) {
    const st = await shim.task.state({ id }, opts).catch((e: TtrpcError) => e);
    if (st instanceof TtrpcError) {
      if (st.code !== Code.NotFound && st.code !== Code.InvalidArgument)
        problems.push(`State ${id}: ${st.message}`);
      continue;
    }
    for (const execId of ["e1", "e2"]) {
      await shim.task.kill({ id, execId, signal: 9 }, opts).catch(() => {});
      await shim.task.wait({ id, execId }, { timeoutMs: 3000 }).catch(() => {});
      await shim.task.delete({ id, execId }, opts).catch(() => {});
    }
    await shim.task.resume({ id }, opts).catch(() => {});
    await shim.task.kill({ id, signal: 9, all: true }, opts).catch(() => {});
    const w = await shim.task.wait({ id }, opts).catch((e: Error) => e);
    if (w instanceof Error) problems.push(`Wait ${id} after SIGKILL: ${w.message}`);
    const d = await shim.task.delete({ id }, opts).catch((e: Error) => e);
    if (d instanceof Error) problems.push(`Delete ${id}: ${d.message}`);
  }
  return problems;
}

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
    run: async ({ method, payload, how }) => {
      const wait = method === "Wait";
      const r = await client
        .call(TASK, method, payload, { timeoutMs: wait ? 400 : 20000 })
        .then(() => ({ code: 0, message: "" }))
        .catch((e: TtrpcError) => ({ code: e.code ?? -1, message: String(e.message) }));
      const counts = (byMethod[method] ??= {});
      counts[r.code] = (counts[r.code] ?? 0) + 1;
      const problems: string[] = [];
      if (r.code === Code.DeadlineExceeded && !wait) problems.push(`${method} (${how}): no answer in 20 s`);
      else if (r.code === Code.Unavailable && /closed|connection/.test(r.message))
        problems.push(`${method} (${how}): connection lost: ${r.message}`);
      else if (!(wait && r.code === Code.DeadlineExceeded))
        problems.push(...statusProblems(method, r.code, r.message).map((p) => `${p} (${how})`));
      if (!snapshot(shim.pid).alive) problems.push("the shim died");
      const touched = untouched(fx);
      if (touched) problems.push(`${method} (${how}): ${touched}`);
      return problems;
    },
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

t.teardown(() => {
  for (const [k, v] of Object.entries(executed)) t.comment(`inputs executed: ${k} ${v}`);
});
