// Test fixture for crash.test.ts (not part of the daemon): opens the store at argv[2] and writes
// forever, one transaction per step, until it is SIGKILLed. It prints "ready" once the store is
// open and "committed <seq>" after each commit. Step <seq> does, in ONE transaction:
//   - create container c<seq> (4 labels, 3 extensions) and put its task (phase "creating");
//   - when seq % 3 == 0: c<seq-1>'s task becomes "running" and its "phase" label follows;
//   - when seq % 5 == 0: c<seq-4>'s task and container are deleted;
//   - the "progress" container's label seq = <seq>.
// So the whole content of the file is a function of the progress label alone, which is what
// crash.test.ts checks after each kill. Resumes from the stored progress when restarted.

import { MetadataStore } from "./metadata-store.js";

const ns = "crash";
const progressId = "progress";

const store = MetadataStore.open(process.argv[2]!);
let seq = Number(store.findContainer(ns, progressId)?.labels.seq ?? "0");
// process.stdout on a pipe is synchronous on Linux (and copes with a full pipe, EAGAIN).
process.stdout.write("ready\n");

const any = (n: number) => ({ typeUrl: `t/${n}`, value: new Uint8Array(64).fill(n & 0xff) });

for (;;) {
  seq++;
  store.transaction(() => {
    if (seq === 1)
      store.createContainer({ namespace: ns, id: progressId, runtime: { name: "r" }, labels: { seq: "0" } });
    const id = `c${seq}`;
    store.createContainer({
      namespace: ns,
      id,
      runtime: { name: "io.containerd.tsrunc.v2" },
      spec: any(seq),
      labels: { seq: String(seq), phase: "creating", a: "x".repeat(100), b: "y".repeat(100) },
      extensions: { e1: any(1), e2: any(2), e3: any(3) },
    });
    store.putTask({
      namespace: ns,
      id,
      phase: "creating",
      bundle: `/run/b/${id}`,
      pid: seq,
      stdout: `/fifo/${id}/out`,
      network: { seq },
    });
    if (seq % 3 === 0) {
      const prev = `c${seq - 1}`;
      store.updateTask(ns, prev, { phase: "running", pid: seq - 1 + 100_000 });
      store.updateContainer(ns, prev, { labels: { phase: "running" } }, ["labels.phase"]);
    }
    if (seq % 5 === 0) {
      const victim = `c${seq - 4}`;
      store.deleteTask(ns, victim);
      store.deleteContainer(ns, victim);
    }
    store.updateContainer(ns, progressId, { labels: { seq: String(seq) } }, ["labels.seq"]);
  });
  process.stdout.write(`committed ${seq}\n`);
}
