// One shim per pod: containers whose spec carries the CRI annotation
// io.kubernetes.cri.sandbox-id share the shim of their sandbox, which exits only after its
// last container is deleted. Driven through real containerd with `ctr run --config SPEC`.
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import t from "tap";
import { assertNoLeaks } from "./helpers/cleanup.js";
import { containerdWithOurShim } from "./helpers/our-shim.js";
import { waitFor } from "./helpers/wait.js";

const _repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

function ourShimPids(grpcAddress: string): number[] {
  const pids: number[] = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = fs.readFileSync(`/proc/${d}/cmdline`, "utf8").split("\0");
      const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const zombie = stat.slice(stat.lastIndexOf(")") + 2)[0] === "Z";
      if (
        !zombie &&
        argv.some((a) => a.endsWith("containerd-shim-tsrunc-v2")) &&
        argv.includes(grpcAddress)
      ) {
        pids.push(Number(d));
      }
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

t.test("ten containers of one pod share one shim, which exits after the last delete", async (t) => {
  const cd = await containerdWithOurShim(t);
  const rootfs = cd.rootfs();
  const specDir = path.join(cd.root, "specs");
  fs.mkdirSync(specDir);
  await execa("runc", ["spec"], { cwd: specDir });
  const base = JSON.parse(fs.readFileSync(path.join(specDir, "config.json"), "utf8"));

  const ids = ["sandbox", ...Array.from({ length: 9 }, (_, i) => `member${i}`)];
  for (const id of ids) {
    const spec = structuredClone(base);
    spec.process.terminal = false;
    spec.process.args = ["/bin/sleep", "1000"];
    spec.root = { path: rootfs, readonly: false };
    spec.linux.cgroupsPath = `/${cd.namespace}/${id}`;
    spec.annotations = {
      "io.kubernetes.cri.sandbox-id": "sandbox",
      "io.kubernetes.cri.container-type": id === "sandbox" ? "sandbox" : "container",
    };
    const file = path.join(specDir, `${id}.json`);
    fs.writeFileSync(file, JSON.stringify(spec));
    const r = await cd.ctr(["run", "-d", "--runtime", "io.containerd.tsrunc.v2", "--config", file, id]);
    t.equal(r.exitCode, 0, `${id} started: ${r.stderr}`);
  }
  const addresses = new Set(ids.map((id) => fs.readFileSync(path.join(cd.bundleDir(id), "address"), "utf8")));
  t.equal(addresses.size, 1, "every bundle names the same shim address");
  t.equal(ourShimPids(cd.grpcAddress).length, 1, "one shim process serves the pod");
  const ls = await cd.ctr(["task", "ls"]);
  for (const id of ids) t.match(ls.stdout, new RegExp(`${id}\\s+\\d+\\s+RUNNING`), `${id} running`);

  // Delete the sandbox first: the shim must stay for the other nine.
  for (const id of ids) {
    const killed = await cd.ctr(["task", "kill", "-s", "KILL", id]);
    t.equal(killed.exitCode, 0, `kill ${id}: ${killed.stderr}`);
    // ctr 1.6 has no `task wait`: poll the listing for the status.
    const stopped = await waitFor(
      async () => {
        const line = (await cd.ctr(["task", "ls"])).stdout.split("\n").find((l) => l.startsWith(`${id} `));
        return line?.includes("STOPPED") ? line : undefined;
      },
      { what: `${id} stopped` },
    );
    t.match(stopped, /STOPPED/, `${id} stopped`);
    const rm = await cd.ctr(["task", "rm", id]);
    t.equal(rm.exitCode, 0, `task rm ${id}: ${rm.stderr}`);
    t.match(rm.stderr, /exit code 137/, `${id}: ctr reports the exit status 137`);
    const crm = await cd.ctr(["container", "rm", id]);
    t.equal(crm.exitCode, 0, `container rm ${id}: ${crm.stderr}`);
    if (id !== ids[ids.length - 1])
      t.equal(ourShimPids(cd.grpcAddress).length, 1, `shim alive after deleting ${id}`);
  }
  await waitFor(() => ourShimPids(cd.grpcAddress).length === 0, {
    what: "the pod's shim to exit",
    timeoutMs: 10_000,
  });
  await cd.stop();
  assertNoLeaks(t, cd.scope);
});
