// A fresh temp root per test: /tmp/tsr-XXXXXX (short, so socket paths under it stay far below
// the 108-byte limit), by default with a tmpfs mounted on it — metadata operations on this
// machine's disk cost ~0.7 ms each, on tmpfs microseconds, and unmounting is the fastest rm -rf.

import * as fs from "node:fs";
import { execaSync } from "execa";
import { onEmergencyExit } from "./cleanup/exit-hooks.js";
import type { LeakScope } from "./cleanup/scope.js";
import { sweepSync } from "./cleanup/sweep.js";
import type { TestLike } from "./cleanup/tap-cleanup.js";

export interface TempRootOptions {
  /** Mount a tmpfs on the root (default true). */
  tmpfs?: boolean;
  /** tmpfs size limit in MiB (default 2048; pages are only used when written). */
  sizeMiB?: number;
}

/** Create /tmp/tsr-XXXXXX (mode 0700), with a tmpfs on it unless told otherwise. No cleanup is registered. */
export function createTempRoot(opts: TempRootOptions = {}): string {
  const root = fs.mkdtempSync("/tmp/tsr-");
  if (opts.tmpfs ?? true) {
    const size = opts.sizeMiB ?? 2048;
    const r = execaSync("mount", ["-t", "tmpfs", "-o", `mode=0700,size=${size}m`, "tsr-test", root], {
      reject: false,
    });
    if (r.exitCode !== 0) {
      fs.rmdirSync(root);
      throw new Error(`mount tmpfs on ${root}: ${String(r.stderr)}`);
    }
  }
  return root;
}

export interface TempRoot {
  /** The root's path. */
  readonly path: string;
  /** Scope for sweeps and leak checks; add namespaces, needles and sockets as the test creates them. */
  readonly scope: {
    tempRoot: string;
    namespaces: string[];
    needles: string[];
    runcRoots: string[];
    sockets: Set<string>;
  } & LeakScope;
  /** Kill, unmount and remove everything of the scope (see sweepSync). Idempotent. */
  cleanup(): string[];
}

/**
 * A temp root for test `t`, swept by t.teardown (and at process exit if the test dies first).
 * For tests that need no containerd (e.g. our daemon with its own state dirs).
 */
export function tempRoot(t: TestLike, opts: TempRootOptions = {}): TempRoot {
  const path = createTempRoot(opts);
  const scope = { tempRoot: path, namespaces: [], needles: [], runcRoots: [], sockets: new Set<string>() };
  let done: string[] | undefined;
  const cleanup = (): string[] => {
    unregister();
    done ??= sweepSync(scope);
    return done;
  };
  const unregister = onEmergencyExit(cleanup);
  t.teardown(() => {
    const errors = cleanup();
    if (errors.length) process.stderr.write(`tsr harness: cleanup of ${path}: ${errors.join("; ")}\n`);
  });
  return { path, scope, cleanup };
}
