// One state-changing operation at a time per container: Pause, Resume, Update and Checkpoint
// each read the state, run runc, then record the new state. Two of them interleaved would act
// on a state the other is about to change (pause twice → runc's "container not running" as an
// Unknown error; resume during a checkpoint → CRIU dumps a running container). Go's shim holds
// the init's mutex for the same reason. Kill and Wait are not serialized: they must get through
// while a long checkpoint runs.

const tails = new WeakMap<object, Promise<unknown>>();

/** Runs `fn` after every earlier call for `key` has settled. */
export function serialized<T>(key: object, fn: () => Promise<T>): Promise<T> {
  const prev = tails.get(key) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  const tail = run.catch(() => {});
  tails.set(key, tail);
  // Drop the entry when nothing else queued behind us, so a finished chain holds nothing.
  void tail.then(() => {
    if (tails.get(key) === tail) tails.delete(key);
  });
  return run;
}
