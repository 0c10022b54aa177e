// The shim's real Task service (TaskServiceImpl from packages/shim-runc-v2's build) behind our
// ttrpc Server in this process, for coverage-guided fuzzing of the request dispatcher without a
// process per input. Its context is a stand-in: runc is /bin/false (every runc call fails at
// once, no container is ever made), no reaper, no events, no logs. Create's runtime options and
// rootfs mounts are dropped before the service sees them: random bytes must not choose which
// binary this root process runs, where runc keeps state, or what gets mounted (the live-shim
// campaigns cover those fields with curated values).
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { runcoptions, TaskService } from "@tsrunc/protocol";
import { Code, decodeResponse, encodeRequest, Server, type ServiceImpl, TtrpcError } from "@tsrunc/ttrpc";
import { waitFor } from "../../helpers/wait.js";
import { ServerEnd } from "./duplex.js";
import { statusProblems, taskMethods } from "./shim-profile.js";
import { RefParser, rawFrame, T_REQUEST } from "./wire.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const SHIM_DIST = path.resolve(here, "../../../../packages/shim-runc-v2/dist");

interface TaskServiceModule {
  TaskServiceImpl: new (ctx: unknown, opts: { defaultOptions?: unknown; onShutdown: () => void }) => unknown;
  taskServiceHandlers(impl: unknown): ServiceImpl<typeof TaskService>;
}

const quiet = {
  trace() {},
  debug() {},
  info() {},
  warn() {},
  error() {},
  fatal() {},
  isLevelEnabled: () => false,
  child() {
    return quiet;
  },
};

export interface InprocTask {
  server: Server;
  /** The shim bundle directory of this stand-in shim. */
  bundle: string;
  shutdowns: number;
}

/** A Server with the real Task service, its state under `root` (a temp dir the caller sweeps). */
export async function inprocTask(root: string): Promise<InprocTask> {
  const mod = (await import(
    pathToFileURL(path.join(SHIM_DIST, "task-service.js")).href
  )) as TaskServiceModule;
  const bundle = path.join(root, "bundles", "fz");
  fs.mkdirSync(bundle, { recursive: true });
  const out: InprocTask = { server: new Server(), bundle, shutdowns: 0 };
  const ctx = {
    namespace: "fuzz",
    shimBundle: bundle,
    reaper: { watch: () => Promise.reject(new Error("no reaper in the fuzz stand-in")) },
    makePipe: () => {
      throw new TtrpcError(Code.Unimplemented, "no pipes in the fuzz stand-in");
    },
    events: new Proxy({}, { get: () => () => {} }),
    log: quiet,
  };
  const impl = new mod.TaskServiceImpl(ctx, {
    defaultOptions: runcoptions.Options.create({ binaryName: "/bin/false", root: path.join(root, "runc") }),
    onShutdown: () => {
      out.shutdowns++;
    },
  });
  const handlers = mod.taskServiceHandlers(impl);
  const create = handlers.create;
  out.server.register(TaskService, {
    ...handlers,
    create: (req, ctx2) => create({ ...req, options: undefined, rootfs: [] }, ctx2),
  });
  return out;
}

/**
 * Runs task-dispatch inputs on one in-memory connection: the first byte picks the method, the
 * rest is its payload; the answer must be a proper status within 5 s.
 */
export function taskRunner(task: InprocTask): { run(input: Uint8Array): Promise<string[]>; close(): void } {
  const names = [...taskMethods.keys()];
  let conn: ServerEnd | undefined;
  let callId = -1;
  const call = async (method: string, payload: Uint8Array): Promise<string[]> => {
    if (callId > 0x7ffffff0) {
      conn?.destroy();
      conn = undefined;
      callId = -1;
    }
    if (!conn) {
      conn = new ServerEnd();
      task.server.handleConnection(conn.asSocket());
    }
    const e = conn;
    const before = e.written.length;
    callId += 2;
    const id = callId;
    e.feed(rawFrame(id, T_REQUEST, 0, encodeRequest({ service: TaskService.name, method, payload })));
    return waitFor(
      () => {
        const frames = new RefParser().push(Buffer.concat(e.written.slice(before)));
        const f = frames.find((x) => x.kind === "frame" && x.id === id);
        if (f && f.kind === "frame") {
          const st = decodeResponse(f.data).status;
          return statusProblems(method, st.code, st.message);
        }
        if (e.destroyed) {
          conn = undefined;
          return ["the connection was closed"];
        }
        return undefined;
      },
      { what: `the answer to ${method}`, timeoutMs: 5000, intervalMs: 1 },
    ).catch(() => [`${method}: no answer in 5 s`]);
  };
  return {
    run: (input) => call(names[(input[0] ?? 0) % names.length]!, input.subarray(1)),
    close: () => conn?.destroy(),
  };
}
