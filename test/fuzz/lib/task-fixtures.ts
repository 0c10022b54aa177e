// The world the message-level campaigns run in (fixture paths of every kind beside a live
// shim), how one Task input is sent and judged, and how failing inputs are made portable:
// temp roots (/tmp/tsr-XXXXXX) and namespaces (t + 10 hex digits) have fixed lengths, so they
// are replaced byte for byte by placeholders in saved inputs and put back when replaying.
import * as fs from "node:fs";
import * as path from "node:path";
import { type Client, Code, TtrpcError } from "@tsrunc/ttrpc";
import { execa } from "execa";
import type { LiveShim } from "./live-shim.js";
import { statusProblems, TASK } from "./shim-profile.js";
import type { Fixtures, TaskInput } from "./task-arbs.js";

export const ROOT_PLACEHOLDER = "/tmp/tsr-ROOT00";
export const NS_PLACEHOLDER = "tNAMESPACE0";

export async function fixtures(shim: LiveShim): Promise<Fixtures> {
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
export function untouched(fx: Fixtures): string | undefined {
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
export async function removeAll(shim: LiveShim, ids: string[]): Promise<string[]> {
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

/** Sends one input; the answer's code and the problems with it. */
export async function runTaskInput(
  client: Client,
  { method, payload, how }: TaskInput,
): Promise<{ code: number; problems: string[] }> {
  const wait = method === "Wait";
  const r = await client
    .call(TASK, method, payload, { timeoutMs: wait ? 400 : 20000 })
    .then(() => ({ code: 0, message: "" }))
    .catch((e: TtrpcError) => ({ code: e.code ?? -1, message: String(e.message) }));
  const problems: string[] = [];
  if (r.code === Code.DeadlineExceeded && !wait) problems.push(`${method} (${how}): no answer in 20 s`);
  else if (r.code === Code.Unavailable && /closed|connection/.test(r.message))
    problems.push(`${method} (${how}): connection lost: ${r.message}`);
  else if (!(wait && r.code === Code.DeadlineExceeded))
    problems.push(...statusProblems(method, r.code, r.message).map((p) => `${p} (${how})`));
  return { code: r.code, problems };
}

export function swapBytes(bytes: Uint8Array, from: string, to: string): Uint8Array {
  if (from.length !== to.length) throw new Error(`placeholder ${to} and ${from} differ in length`);
  return new Uint8Array(Buffer.from(Buffer.from(bytes).toString("latin1").split(from).join(to), "latin1"));
}

/** The input with this run's temp root and namespace replaced by placeholders. */
export function portableTaskInput(fx: Fixtures, namespace: string, input: TaskInput): unknown {
  const payload = swapBytes(swapBytes(input.payload, fx.root, ROOT_PLACEHOLDER), namespace, NS_PLACEHOLDER);
  return { method: input.method, how: input.how, payload: { $b64: Buffer.from(payload).toString("base64") } };
}

/** A saved input with this run's temp root and namespace put back. */
export function localTaskInput(fx: Fixtures, namespace: string, input: TaskInput): TaskInput {
  return {
    ...input,
    payload: swapBytes(swapBytes(input.payload, ROOT_PLACEHOLDER, fx.root), NS_PLACEHOLDER, namespace),
  };
}
