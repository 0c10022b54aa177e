// tsctl run [OPTIONS] (IMAGE | --rootfs DIR) ID [COMMAND [ARG...]]
//
// With an IMAGE, ctr's flow first: Images.Get (absent: NotFound "pull it first"; no implicit
// pull, as ctr) → ImageTools.Config (with --user) → the spec from the image config →
// Snapshots.Prepare(key = ID, parent = the image's chain id) → Containers.Create naming image,
// snapshotter and snapshot key → Snapshots.Mounts → Tasks.Create with those mounts as rootfs;
// --rm removes the snapshot with the container, and a failure removes a snapshot no kept
// container uses. Then, as with --rootfs:
//
// ctr's flow: Containers.Create (spec, runtime, labels) → stdio → Tasks.Create → Tasks.Wait
// (asked before Start) → Tasks.Start → signals forwarded → exit → Tasks.Delete (always, when
// not detached, as ctr) → Containers.Delete with --rm. The exit code is the container's exit
// status (128+N for a death by signal N, as the shim reports it).
//
// -d: returns right after Start and prints nothing. Without --null-io/--log-uri the fifos are
// made as usual and left in place, with no reader, for `tsctl tasks attach` (as ctr leaves
// them for `ctr task attach`); output beyond the fifo's buffer (64 KiB) then waits for a
// reader, so give long-running chatty containers --null-io or --log-uri. `tsctl tasks rm`
// removes the fifos. --rm with -d is refused (ctr silently ignores it).

import { statSync } from "node:fs";
import { resolve } from "node:path";
import { type Any, packAny, runcoptions } from "@tsrunc/protocol";
import { Code, isCode, TtrpcError } from "@tsrunc/ttrpc";
import type { TsruncClient } from "../client.js";
import { DEFAULT_RUNTIME } from "../defaults.js";
import { checkIdentifier } from "../identifiers.js";
import { buildImageSpec } from "../image-spec.js";
import { DEFAULT_SNAPSHOTTER, type Image } from "../images.js";
import { removeFifoSet } from "../io.js";
import { normalizeImageName } from "../reference.js";
import { buildSpec } from "../spec.js";
import { checkEnv, parseKeyValues, parseMountFlag } from "../spec-options.js";
import { bool, list, type OptionSpec, type Parsed, parseArgs, str, UsageError } from "./args.js";
import { withClient } from "./connect.js";
import { GLOBAL_OPTIONS, type Globals, withGlobals } from "./globals.js";
import { applyHostNetwork, type NetOptions, netLabels, parseNetOptions } from "./net-options.js";
import {
  exitCodeFor,
  type RawTerminal,
  relayWindowSize,
  SignalRelay,
  type StdioMode,
  type StdioSetup,
  setupStdio,
  stdioMode,
  waitThenStart,
} from "./session.js";

export const RUN_OPTIONS: readonly OptionSpec[] = [
  ...GLOBAL_OPTIONS,
  { name: "rootfs", type: "string" },
  { name: "platform", type: "string" },
  { name: "rm", type: "boolean" },
  { name: "detach", short: "d", type: "boolean" },
  { name: "tty", short: "t", type: "boolean" },
  { name: "interactive", short: "i", type: "boolean" },
  { name: "env", short: "e", type: "string", multiple: true },
  { name: "cwd", type: "string" },
  { name: "user", short: "u", type: "string" },
  { name: "label", type: "string", multiple: true },
  { name: "mount", type: "string", multiple: true },
  { name: "null-io", type: "boolean" },
  { name: "log-uri", type: "string" },
  { name: "privileged", type: "boolean" },
  { name: "runtime", type: "string" },
  { name: "runc-binary", type: "string" },
  { name: "hostname", type: "string" },
  { name: "read-only", type: "boolean" },
  { name: "net", type: "string", multiple: true },
  { name: "publish", short: "p", type: "string", multiple: true },
];

export interface RunRequest {
  id: string;
  /** Exactly one of rootfs and image is set. */
  rootfs: string | undefined;
  image: string | undefined;
  /** The image's platform to run ("os/arch[/variant]"; the host's when left out). */
  platform: string | undefined;
  args: string[];
  rm: boolean;
  detach: boolean;
  tty: boolean;
  stdin: boolean;
  env: string[];
  cwd: string | undefined;
  user: string | undefined;
  labels: Record<string, string>;
  mounts: ReturnType<typeof parseMountFlag>[];
  nullIO: boolean;
  logUri: string | undefined;
  privileged: boolean;
  runtime: string;
  runcBinary: string | undefined;
  hostname: string | undefined;
  readOnly: boolean;
  /** --net and -p (net-options.ts). */
  net: NetOptions;
}

/** Parses run's argv: options stop at ID (with --rootfs) or at IMAGE ID (without). */
export function parseRun(argv: readonly string[]): { request: RunRequest; parsed: Parsed } {
  const parsed = parseArgs(argv, RUN_OPTIONS, {
    stopAfter: (v) => (typeof v.rootfs === "string" ? 1 : 2),
  });
  const rootfs = str(parsed, "rootfs");
  let image: string | undefined;
  let rest = parsed.positionals;
  if (rootfs === undefined) {
    if (parsed.positionals.length < 2) throw new UsageError("run needs an IMAGE (or --rootfs DIR) and an ID");
    [image] = parsed.positionals as [string];
    if (image === "") throw new UsageError("run needs an IMAGE name");
    rest = parsed.positionals.slice(1);
  }
  const [id, ...args] = rest;
  if (id === undefined) throw new UsageError("run needs a container ID");
  if (rootfs === "") throw new UsageError("--rootfs needs a directory");
  if (rootfs !== undefined && args.length === 0)
    throw new UsageError("run --rootfs needs a command after the ID");
  const rm = bool(parsed, "rm");
  const detach = bool(parsed, "detach");
  if (rm && detach)
    throw new UsageError("--rm cannot be used with -d (remove it with tsctl tasks rm and containers rm)");
  const request: RunRequest = {
    id,
    rootfs,
    image,
    platform: str(parsed, "platform"),
    args,
    rm,
    detach,
    tty: bool(parsed, "tty"),
    stdin: bool(parsed, "interactive"),
    env: checkEnv(list(parsed, "env")),
    cwd: str(parsed, "cwd"),
    user: str(parsed, "user"),
    labels: parseKeyValues(list(parsed, "label")),
    mounts: list(parsed, "mount").map((m) => parseMountFlag(m)),
    nullIO: bool(parsed, "null-io"),
    logUri: str(parsed, "log-uri"),
    privileged: bool(parsed, "privileged"),
    runtime: str(parsed, "runtime") ?? DEFAULT_RUNTIME,
    runcBinary: str(parsed, "runc-binary"),
    hostname: str(parsed, "hostname"),
    readOnly: bool(parsed, "read-only"),
    net: parseNetOptions(list(parsed, "net"), list(parsed, "publish")),
  };
  return { request, parsed };
}

function checkRootfs(dir: string): string {
  const abs = resolve(dir);
  let isDir = false;
  try {
    isDir = statSync(abs).isDirectory();
  } catch {
    throw new TtrpcError(Code.InvalidArgument, `--rootfs ${dir}: no such directory`);
  }
  if (!isDir) throw new TtrpcError(Code.InvalidArgument, `--rootfs ${dir}: not a directory`);
  return abs;
}

/** The container's image, when it is made from one: its record's name and top chain id. */
interface ImageRoot {
  name: string;
  chainId: string;
}

export async function main(argv: string[], base: Globals): Promise<number> {
  const { request: r, parsed } = parseRun(argv);
  const g = withGlobals(base, parsed);
  checkIdentifier(r.id, "container id");
  const mode = stdioMode({ nullIO: r.nullIO, logUri: r.logUri, tty: r.tty, stdin: r.stdin });
  const common = {
    namespace: g.namespace,
    id: r.id,
    env: r.env,
    ...(r.cwd !== undefined ? { cwd: r.cwd } : {}),
    tty: r.tty,
    ...(r.hostname !== undefined ? { hostname: r.hostname } : {}),
    readOnly: r.readOnly,
    privileged: r.privileged,
    mounts: r.mounts,
    annotations: r.labels,
  };
  const runtimeOptions: Any | undefined =
    r.runcBinary === undefined ? undefined : packAny(runcoptions.Options, { binaryName: r.runcBinary });

  if (r.image === undefined) {
    const rootfs = checkRootfs(r.rootfs ?? "");
    const spec = buildSpec({
      ...common,
      args: r.args,
      ...(r.user !== undefined ? { user: r.user } : {}),
      rootfs,
    });
    return withClient(g, (client) => runContainer(client, g, r, mode, spec, runtimeOptions, undefined));
  }
  const imageName = r.image;
  return withClient(g, async (client) => {
    // ctr's order: the image record, then its config (the daemon unpacks it when it has to and
    // resolves the user in the image's /etc/passwd and /etc/group), then the spec.
    const image = await findImage(client, imageName);
    const cfg = await client.images.config({
      name: image.name,
      ...(r.platform !== undefined ? { platform: r.platform } : {}),
      user: r.user ?? "",
    });
    const spec = buildImageSpec({ ...common, image: cfg, imageName: image.name, command: r.args });
    return runContainer(client, g, r, mode, spec, runtimeOptions, { name: image.name, chainId: cfg.chainId });
  });
}

/**
 * The image record for what was typed: the name as given, else its normalized form (`busybox`
 * → `docker.io/library/busybox:latest`). Absent: NotFound, and no pull (ctr's behaviour).
 */
export async function findImage(client: TsruncClient, name: string): Promise<Image> {
  try {
    return await client.images.get(name);
  } catch (err) {
    if (!isCode(err, Code.NotFound)) throw err;
  }
  const full = normalizeImageName(name);
  if (full !== name) {
    try {
      return await client.images.get(full);
    } catch (err) {
      if (!isCode(err, Code.NotFound)) throw err;
    }
  }
  throw new TtrpcError(Code.NotFound, `image ${name} not found: pull it first (tsctl images pull ${name})`);
}

/** Makes the container's active snapshot on the image (key = container id), as ctr's WithNewSnapshot. */
async function prepareSnapshot(client: TsruncClient, id: string, image: ImageRoot): Promise<void> {
  try {
    await client.snapshots.prepare({ key: id, parent: image.chainId, snapshotter: DEFAULT_SNAPSHOTTER });
  } catch (err) {
    // The snapshot of an existing container: say so, as Containers.Create would.
    if (isCode(err, Code.AlreadyExists)) {
      const exists = await client.containers.get(id).then(
        () => true,
        () => false,
      );
      if (exists) throw new TtrpcError(Code.AlreadyExists, `container ${id} already exists`, { cause: err });
      throw new TtrpcError(Code.AlreadyExists, `snapshot ${id} already exists`, { cause: err });
    }
    throw err;
  }
}

async function runContainer(
  client: TsruncClient,
  g: Globals,
  r: RunRequest,
  mode: StdioMode,
  spec: ReturnType<typeof buildSpec>,
  runtimeOptions: Any | undefined,
  image: ImageRoot | undefined,
): Promise<number> {
  const ref = { containerId: r.id };
  // Before anything exists: a signal now is held, not fatal (see SignalRelay).
  let terminal: RawTerminal | undefined;
  const relay = new SignalRelay(!r.tty, undefined);
  let stdio: StdioSetup | undefined;
  const state = { snapshotCreated: false, containerCreated: false, taskCreated: false, started: false };
  try {
    if (image !== undefined) {
      await prepareSnapshot(client, r.id, image);
      state.snapshotCreated = true;
    }
    await client.containers.create({
      id: r.id,
      spec: applyHostNetwork(spec, r.net),
      runtime:
        runtimeOptions === undefined ? { name: r.runtime } : { name: r.runtime, options: runtimeOptions },
      labels: { ...r.labels, ...netLabels(r.net) },
      ...(image !== undefined
        ? { image: image.name, snapshotter: DEFAULT_SNAPSHOTTER, snapshotKey: r.id }
        : {}),
    });
    state.containerCreated = true;
    stdio = await setupStdio({ client, g, ref, mode, tty: r.tty, stdin: r.stdin, detach: r.detach });
    terminal = stdio.terminal;
    // With an image the snapshot's mounts are the rootfs the shim mounts (ctr's NewTask).
    const rootfs = image === undefined ? [] : await client.snapshots.mounts(r.id);
    await client.tasks.create({
      containerId: r.id,
      stdin: stdio.paths.stdin,
      stdout: stdio.paths.stdout,
      stderr: stdio.paths.stderr,
      terminal: r.tty,
      rootfs,
      ...(runtimeOptions !== undefined ? { options: runtimeOptions } : {}),
    });
    state.taskCreated = true;
    const proc = await waitThenStart(client, ref, r.detach);
    state.started = true;
    stdio.io?.started();
    stdio.release?.();
    if (r.detach) {
      relay.stop();
      return 0;
    }
    const stopResize = r.tty ? relayWindowSize(client, ref) : () => {};
    relay.forwardTo((sig) => void client.tasks.kill({ ...ref, signal: sig }).catch(() => {}));
    let status: number;
    try {
      status = (await proc.exit).exitStatus;
    } finally {
      stopResize();
      relay.stop();
    }
    await stdio.io?.drain(2000);
    terminal?.restore();
    await client.tasks.delete(ref);
    state.taskCreated = false;
    if (r.rm) {
      await client.containers.delete(r.id);
      // ctr's WithSnapshotCleanup: the container's snapshot goes with it.
      if (image !== undefined) await client.snapshots.removeIfExists(r.id);
    }
    await removeFifoSet(stdio.fifos);
    return exitCodeFor(status);
  } catch (err) {
    terminal?.restore();
    relay.stop();
    stdio?.io?.close();
    stdio?.release?.();
    await cleanupAfterFailure(client, r, state, stdio, err);
    throw err;
  }
}

/**
 * What a failed run leaves behind is removed: a task that never started, with --rm the
 * container we created (never one that was there before), the snapshot we prepared unless a
 * container we keep uses it, and our fifos.
 */
async function cleanupAfterFailure(
  client: TsruncClient,
  r: RunRequest,
  state: { snapshotCreated: boolean; containerCreated: boolean; taskCreated: boolean; started: boolean },
  stdio: StdioSetup | undefined,
  cause: unknown,
): Promise<void> {
  // A lost daemon cannot be asked for anything.
  if (!isCode(cause, Code.Unavailable)) {
    if (state.taskCreated && !state.started) {
      await client.tasks.kill({ containerId: r.id, signal: "SIGKILL", all: true }).catch(() => {});
      await client.tasks.delete({ containerId: r.id }).catch(() => {});
    }
    let containerKept = state.containerCreated;
    // A networked run whose task could not be created (a bad --net, a broken conf, a missing
    // plugin) removes its container too: kept, it would only fail again with the same labels.
    const netFailed = !state.taskCreated && r.net.networks.length > 0 && r.net.networks[0] !== "host";
    if (state.containerCreated && (r.rm || netFailed)) {
      containerKept = !(await client.containers.delete(r.id).then(
        () => true,
        () => false,
      ));
    }
    if (state.snapshotCreated && !containerKept) await client.snapshots.removeIfExists(r.id).catch(() => {});
  }
  await removeFifoSet(stdio?.fifos).catch(() => {});
}
