// Locates and loads the native addon (binding.gyp and src/*.cc of this package; built by
// `npm run build:native -w @tsrunc/native` into build/Release/).
// Loaded lazily on first use, with process.dlopen: that works from dist/, from an ESM or CJS
// bundle and from a single-file executable alike, where createRequire may not.
import { existsSync } from "node:fs";
import { constants } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** File name of the addon; the bundle step copies it beside the bundle. */
export const ADDON_FILE = "tsrunc_native.node";

/** Environment variable naming the addon file explicitly (then no other place is tried). */
export const ADDON_ENV = "TSRUNC_ADDON";

/** The addon's raw exports; use the typed wrappers (reaper.ts, console-socket.ts, …) instead. */
export interface NativeAddon {
  setChildSubreaper(): void;
  isChildSubreaper(): boolean;
  setWindowSize(fd: number, rows: number, cols: number): void;
  openPtyPeer(masterFd: number): number;
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };
  /** eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK): cgroup v1 OOM notifications. */
  eventfd(): number;
  /** execve(2): never returns; throws (code ENOENT, …) when the exec fails. */
  execve(file: string, argv: string[], env: string[]): never;
  /** malloc_trim(0): give freed heap pages back to the kernel; true if any were. */
  mallocTrim(): boolean;
  /** pipe2(O_CLOEXEC): [read end, write end]. */
  pipe(): [number, number];
  /** Reaps every exited child that libuv did not spawn; exitedAt in ms since the epoch. */
  reapExited(): { pid: number; status: number; exitedAt: number }[];
  isDescendant(pid: number): boolean;
  FdReceiver: new (path: string, timeoutMs: number) => { readonly promise: Promise<number>; cancel(): void };
  FdPoll: new (
    fd: number,
    callback: (error: Error | null, readable: boolean, writable: boolean) => void,
  ) => { start(readable: boolean, writable: boolean): void; stop(): void; close(): void };
}

/**
 * Set by a single-file executable's entry (scripts/lib/sea-entry.cjs): extracts the embedded
 * addon into its verified, content-addressed cache on first call and returns that path.
 */
const SEA_ADDON_HOOK = "__tsruncAddonPath";

/** Where the addon is looked for, in order. */
export function addonCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const override = env[ADDON_ENV];
  if (override) return [resolve(override)];
  const fromSea = (globalThis as { [SEA_ADDON_HOOK]?: (name: string) => string })[SEA_ADDON_HOOK];
  if (typeof fromSea === "function") return [fromSea(ADDON_FILE)];
  const places: string[] = [];
  let moduleDir: string | undefined;
  try {
    // Undefined in a CJS bundle; there argv[1] / execPath below cover it.
    moduleDir = dirname(fileURLToPath(import.meta.url));
  } catch {}
  if (moduleDir) places.push(join(moduleDir, ADDON_FILE)); // beside an ESM bundle
  if (process.argv[1]) places.push(join(dirname(resolve(process.argv[1])), ADDON_FILE)); // beside a bundle
  places.push(join(dirname(process.execPath), ADDON_FILE)); // beside a single-file executable
  // From dist/ (or src/) of this package.
  if (moduleDir) places.push(join(moduleDir, "..", "build", "Release", ADDON_FILE));
  return [...new Set(places)];
}

let loaded: NativeAddon | undefined;

/** The loaded addon; throws (code ERR_TSRUNC_ADDON) if no candidate file exists or loads. */
export function addon(): NativeAddon {
  if (loaded) return loaded;
  const candidates = addonCandidates();
  const file = candidates.find((f) => existsSync(f));
  if (!file) {
    throw Object.assign(
      new Error(
        `native addon ${ADDON_FILE} not found (looked in: ${candidates.join(", ")}); build it with ` +
          `\`npm run build:native -w @tsrunc/native\` or set ${ADDON_ENV}`,
      ),
      { code: "ERR_TSRUNC_ADDON" },
    );
  }
  const module = { exports: {} as NativeAddon };
  try {
    process.dlopen(module, file, constants.dlopen.RTLD_NOW);
  } catch (cause) {
    throw Object.assign(new Error(`cannot load native addon ${file}: ${String(cause)}`, { cause }), {
      code: "ERR_TSRUNC_ADDON",
    });
  }
  loaded = module.exports;
  return loaded;
}

/** Path of the addon file that addon() loads (or would load), if one exists. */
export function addonPath(): string | undefined {
  return addonCandidates().find((f) => existsSync(f));
}
