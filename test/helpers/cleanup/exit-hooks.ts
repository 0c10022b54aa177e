// The last resort at process exit: cleanups that run even when a test dies before its teardowns.

import { onExit } from "signal-exit";

const emergencies = new Set<() => void>();
let exitHookInstalled = false;

/**
 * Run `fn` (synchronously) if the process exits or is killed by a catchable signal while it is
 * still registered: the safety net for tests that die before their teardowns run. Returns the
 * function that unregisters it.
 */
export function onEmergencyExit(fn: () => void): () => void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    onExit(() => {
      for (const f of [...emergencies]) {
        emergencies.delete(f);
        try {
          f();
        } catch (e) {
          process.stderr.write(`tsr harness: emergency cleanup failed: ${String(e)}\n`);
        }
      }
    });
  }
  emergencies.add(fn);
  return () => {
    emergencies.delete(fn);
  };
}
