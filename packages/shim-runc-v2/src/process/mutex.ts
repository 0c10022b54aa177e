// A process's lock: one state-changing operation at a time (Start, Delete, Pause, Resume, Update,
// Checkpoint). Each reads the state, runs runc, then records the new state; two interleaved
// would act on a state the other is about to change (pause twice → runc's "container not
// running" as an Unknown error; resume during a checkpoint → CRIU dumps a running container).
// containerd's shim holds the process's mutex for the same reason. Kill, Wait, State and Stats
// do not take it: they must get through while a long checkpoint runs.

export class Mutex {
  #tail: Promise<unknown> = Promise.resolve();

  /** Runs `fn` once every earlier call has settled, in call order, whether they failed or not. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(fn);
    this.#tail = run.catch(() => {});
    return run;
  }
}
