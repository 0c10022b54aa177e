// A model of the shim's Task API state machine, for fast-check's model-based testing against a
// live shim with real runc containers.
//
//   container (init): absent ─Create→ created ─Start→ running ⇄ paused (Pause/Resume)
//                      created|running|paused ─Kill 9→ stopped ─Delete→ absent
//                      created ─Delete→ absent (runc delete --force: exit 137)
//   exec:             absent ─Exec→ created ─Start→ running ─Kill 9→ stopped ─Delete→ absent
//
// Wrong transitions are FailedPrecondition, unknown ids (and anything after Delete) NotFound, bad
// arguments InvalidArgument. Kill 9 commands wait for the exit, so the model never has to guess
// when it lands. A method that answers Unimplemented must answer so every time (methods that
// have not landed yet): the model then expects 12 and no change.
import { type TaskService, tasktypes } from "@tsrunc/protocol";
import { type ClientStub, Code, TtrpcError } from "@tsrunc/ttrpc";
import fc from "fast-check";

export type InitStatus = "created" | "running" | "paused" | "stopped";
export type ExecStatus = "created" | "running" | "stopped";

export interface ModelContainer {
  status: InitStatus;
  exit?: number;
  execs: Map<string, { status: ExecStatus; exit?: number }>;
}

export interface Model {
  containers: Map<string, ModelContainer>;
}

export interface Real {
  task: ClientStub<typeof TaskService>;
  bundles: Record<string, string>;
  /** Methods seen answering Unimplemented (true) or something else (false). */
  implemented: Map<string, boolean>;
  /** A log of commands and answers, for failure messages. */
  log: string[];
}

const SPEC_URL = "types.containerd.io/opencontainers/runtime-spec/1/Process";
const SLEEP_SPEC = {
  typeUrl: SPEC_URL,
  value: Buffer.from(JSON.stringify({ args: ["/bin/sleep", "100000"], cwd: "/", user: { uid: 0, gid: 0 } })),
};

const OPTS = { timeoutMs: 20000 };

type Outcome<T> = { code: 0; value: T } | { code: number; message: string };

async function outcome<T>(p: Promise<T>): Promise<Outcome<T>> {
  try {
    return { code: 0, value: await p };
  } catch (e) {
    if (e instanceof TtrpcError) return { code: e.code, message: e.message };
    throw e;
  }
}

function fail(what: string, got: Outcome<unknown>, want: number | string): never {
  const msg = got.code === 0 ? "OK" : `code ${got.code} (${(got as { message: string }).message})`;
  throw new Error(`${what}: got ${msg}, model expects ${want}`);
}

function expectCode(what: string, got: Outcome<unknown>, want: number): void {
  if (got.code !== want) fail(what, got, want);
}

/** Unimplemented is acceptable only consistently; returns true when the method is unimplemented. */
function unimplemented(r: Real, method: string, got: Outcome<unknown>): boolean {
  const known = r.implemented.get(method);
  const isUnimpl = got.code === Code.Unimplemented;
  if (known === undefined) {
    r.implemented.set(method, !isUnimpl);
    return isUnimpl;
  }
  if (known && isUnimpl) throw new Error(`${method} answered Unimplemented after answering otherwise`);
  if (!known && !isUnimpl) throw new Error(`${method} answered ${got.code} after answering Unimplemented`);
  return isUnimpl;
}

const statusOf: Record<InitStatus | ExecStatus, number> = {
  created: tasktypes.Status.CREATED,
  running: tasktypes.Status.RUNNING,
  paused: tasktypes.Status.PAUSED,
  stopped: tasktypes.Status.STOPPED,
};

abstract class Cmd implements fc.AsyncCommand<Model, Real> {
  constructor(
    readonly id: string,
    readonly execId = "",
  ) {}
  check(_m: Readonly<Model>): boolean {
    return true;
  }
  abstract run(m: Model, r: Real): Promise<void>;
  abstract name(): string;
  toString(): string {
    return this.execId ? `${this.name()}(${this.id}/${this.execId})` : `${this.name()}(${this.id})`;
  }
  protected note(r: Real, got: Outcome<unknown>): void {
    r.log.push(`${this} → ${got.code === 0 ? "OK" : got.code}`);
  }
  protected exec(m: Model) {
    return m.containers.get(this.id)?.execs.get(this.execId);
  }
}

/** Waits for the exit of a process the command just killed; returns its status. */
async function waitExit(r: Real, id: string, execId = ""): Promise<number> {
  const w = await outcome(r.task.wait({ id, execId }, { timeoutMs: 10000 }));
  if (w.code !== 0) fail(`Wait(${id}/${execId}) after SIGKILL`, w, "an exit");
  return (w as { value: { exitStatus: number } }).value.exitStatus;
}

export class Create extends Cmd {
  name() {
    return "Create";
  }
  async run(m: Model, r: Real) {
    const got = await outcome(r.task.create({ id: this.id, bundle: r.bundles[this.id]! }, OPTS));
    this.note(r, got);
    if (m.containers.has(this.id)) return expectCode(`${this}`, got, Code.AlreadyExists);
    expectCode(`${this}`, got, 0);
    m.containers.set(this.id, { status: "created", execs: new Map() });
  }
}

export class Start extends Cmd {
  name() {
    return "Start";
  }
  async run(m: Model, r: Real) {
    const got = await outcome(r.task.start({ id: this.id, execId: this.execId }, OPTS));
    this.note(r, got);
    const c = m.containers.get(this.id);
    if (!c) return expectCode(`${this}`, got, Code.NotFound);
    if (this.execId) {
      const e = c.execs.get(this.execId);
      if (!e) return expectCode(`${this}`, got, Code.NotFound);
      if (e.status !== "created" || c.status !== "running")
        return expectCode(`${this}`, got, Code.FailedPrecondition);
      expectCode(`${this}`, got, 0);
      e.status = "running";
      return;
    }
    if (c.status !== "created") return expectCode(`${this}`, got, Code.FailedPrecondition);
    expectCode(`${this}`, got, 0);
    c.status = "running";
  }
}

export class Kill9 extends Cmd {
  name() {
    return "Kill9";
  }
  override check(m: Readonly<Model>) {
    // A frozen (cgroup v1) exec cannot die before a Resume: not a transition this model follows.
    return !(this.execId && m.containers.get(this.id)?.status === "paused");
  }
  async run(m: Model, r: Real) {
    const got = await outcome(r.task.kill({ id: this.id, execId: this.execId, signal: 9 }, OPTS));
    this.note(r, got);
    const c = m.containers.get(this.id);
    if (!c) return expectCode(`${this}`, got, Code.NotFound);
    if (this.execId) {
      const e = c.execs.get(this.execId);
      if (!e) return expectCode(`${this}`, got, Code.NotFound);
      if (e.status === "created") return expectCode(`${this}`, got, Code.FailedPrecondition);
      if (e.status === "stopped") return expectCode(`${this}`, got, Code.NotFound);
      expectCode(`${this}`, got, 0);
      e.exit = await waitExit(r, this.id, this.execId);
      if (e.exit !== 137) throw new Error(`${this}: exit ${e.exit}, expected 137`);
      e.status = "stopped";
      return;
    }
    if (c.status === "stopped") return expectCode(`${this}`, got, Code.NotFound);
    expectCode(`${this}`, got, 0);
    c.exit = await waitExit(r, this.id);
    if (c.exit !== 137) throw new Error(`${this}: exit ${c.exit}, expected 137`);
    c.status = "stopped";
    // The container's other processes die with its init (its pid namespace ends).
    for (const [execId, e] of c.execs) {
      if (e.status !== "running") continue;
      e.exit = await waitExit(r, this.id, execId);
      e.status = "stopped";
    }
  }
}

export class KillBadSignal extends Cmd {
  constructor(
    id: string,
    readonly signal: number,
  ) {
    super(id);
  }
  name() {
    return `KillBadSignal[${this.signal}]`;
  }
  async run(m: Model, r: Real) {
    const got = await outcome(r.task.kill({ id: this.id, signal: this.signal }, OPTS));
    this.note(r, got);
    expectCode(`${this}`, got, m.containers.has(this.id) ? Code.InvalidArgument : Code.NotFound);
  }
}

export class Delete extends Cmd {
  name() {
    return "Delete";
  }
  async run(m: Model, r: Real) {
    const got = await outcome(r.task.delete({ id: this.id, execId: this.execId }, OPTS));
    this.note(r, got);
    const c = m.containers.get(this.id);
    if (!c) return expectCode(`${this}`, got, Code.NotFound);
    if (this.execId) {
      const e = c.execs.get(this.execId);
      if (!e) return expectCode(`${this}`, got, Code.NotFound);
      if (e.status === "running") return expectCode(`${this}`, got, Code.FailedPrecondition);
      expectCode(`${this}`, got, 0);
      c.execs.delete(this.execId);
      return;
    }
    if (c.status === "running" || c.status === "paused")
      return expectCode(`${this}`, got, Code.FailedPrecondition);
    expectCode(`${this}`, got, 0);
    const exit = (got as { value: { exitStatus: number } }).value.exitStatus;
    const want = c.status === "created" ? 137 : c.exit;
    if (exit !== want) throw new Error(`${this}: exit status ${exit}, model expects ${want}`);
    m.containers.delete(this.id);
  }
}

export class Wait extends Cmd {
  name() {
    return "Wait";
  }
  async run(m: Model, r: Real) {
    const got = await outcome(r.task.wait({ id: this.id, execId: this.execId }, { timeoutMs: 150 }));
    this.note(r, got);
    const c = m.containers.get(this.id);
    if (!c) return expectCode(`${this}`, got, Code.NotFound);
    const p = this.execId ? c.execs.get(this.execId) : c;
    if (!p) return expectCode(`${this}`, got, Code.NotFound);
    if (p.status !== "stopped") return expectCode(`${this}`, got, Code.DeadlineExceeded);
    expectCode(`${this}`, got, 0);
    const exit = (got as { value: { exitStatus: number } }).value.exitStatus;
    if (exit !== p.exit) throw new Error(`${this}: exit ${exit}, model expects ${p.exit}`);
  }
}

export class State extends Cmd {
  name() {
    return "State";
  }
  async run(m: Model, r: Real) {
    const got = await outcome(r.task.state({ id: this.id, execId: this.execId }, OPTS));
    this.note(r, got);
    const c = m.containers.get(this.id);
    if (!c) return expectCode(`${this}`, got, Code.NotFound);
    const p = this.execId ? c.execs.get(this.execId) : c;
    if (!p) return expectCode(`${this}`, got, Code.NotFound);
    expectCode(`${this}`, got, 0);
    const v = (got as { value: { status: number; exitStatus: number } }).value;
    if (v.status !== statusOf[p.status])
      fail(`${this}`, { code: 0, value: v }, `status ${p.status}, got ${v.status}`);
    if (p.status === "stopped" && v.exitStatus !== p.exit)
      throw new Error(`${this}: exit ${v.exitStatus}, model expects ${p.exit}`);
  }
}

export class CloseIO extends Cmd {
  name() {
    return "CloseIO";
  }
  async run(m: Model, r: Real) {
    const got = await outcome(r.task.closeIO({ id: this.id, execId: this.execId, stdin: true }, OPTS));
    this.note(r, got);
    const c = m.containers.get(this.id);
    if (!c || (this.execId && !c.execs.has(this.execId))) return expectCode(`${this}`, got, Code.NotFound);
    expectCode(`${this}`, got, 0);
  }
}

export class Pids extends Cmd {
  name() {
    return "Pids";
  }
  async run(m: Model, r: Real) {
    const got = await outcome(r.task.pids({ id: this.id }, OPTS));
    this.note(r, got);
    const c = m.containers.get(this.id);
    if (!c) return expectCode(`${this}`, got, Code.NotFound);
    expectCode(`${this}`, got, 0);
    const n = (got as { value: { processes: unknown[] } }).value.processes.length;
    const running = [...c.execs.values()].filter((e) => e.status === "running").length;
    const want = c.status === "stopped" ? 0 : 1 + running;
    if (n !== want) throw new Error(`${this}: ${n} processes, model expects ${want}`);
  }
}

export class Pause extends Cmd {
  name() {
    return "Pause";
  }
  async run(m: Model, r: Real) {
    const got = await outcome(r.task.pause({ id: this.id }, OPTS));
    this.note(r, got);
    if (unimplemented(r, "Pause", got)) return;
    const c = m.containers.get(this.id);
    if (!c) return expectCode(`${this}`, got, Code.NotFound);
    if (c.status !== "running") return expectCode(`${this}`, got, Code.FailedPrecondition);
    expectCode(`${this}`, got, 0);
    c.status = "paused";
  }
}

export class Resume extends Cmd {
  name() {
    return "Resume";
  }
  async run(m: Model, r: Real) {
    const got = await outcome(r.task.resume({ id: this.id }, OPTS));
    this.note(r, got);
    if (unimplemented(r, "Resume", got)) return;
    const c = m.containers.get(this.id);
    if (!c) return expectCode(`${this}`, got, Code.NotFound);
    if (c.status !== "paused") return expectCode(`${this}`, got, Code.FailedPrecondition);
    expectCode(`${this}`, got, 0);
    c.status = "running";
  }
}

export class Exec extends Cmd {
  name() {
    return "Exec";
  }
  async run(m: Model, r: Real) {
    const got = await outcome(r.task.exec({ id: this.id, execId: this.execId, spec: SLEEP_SPEC }, OPTS));
    this.note(r, got);
    if (unimplemented(r, "Exec", got)) return;
    const c = m.containers.get(this.id);
    if (!c) return expectCode(`${this}`, got, Code.NotFound);
    if (c.execs.has(this.execId)) return expectCode(`${this}`, got, Code.AlreadyExists);
    if (c.status !== "created" && c.status !== "running")
      return expectCode(`${this}`, got, Code.FailedPrecondition);
    expectCode(`${this}`, got, 0);
    c.execs.set(this.execId, { status: "created" });
  }
}

export class ResizePty extends Cmd {
  constructor(
    id: string,
    execId: string,
    readonly size: number,
  ) {
    super(id, execId);
  }
  name() {
    return `ResizePty[${this.size}]`;
  }
  async run(m: Model, r: Real) {
    const got = await outcome(
      r.task.resizePty({ id: this.id, execId: this.execId, width: this.size, height: 24 }, OPTS),
    );
    this.note(r, got);
    if (unimplemented(r, "ResizePty", got)) return;
    const c = m.containers.get(this.id);
    if (!c || (this.execId && !c.execs.has(this.execId))) return expectCode(`${this}`, got, Code.NotFound);
    // No terminal here: a size in range is a no-op.
    expectCode(`${this}`, got, this.size > 0xffff ? Code.InvalidArgument : 0);
  }
}

export function commandsArb(ids: string[]) {
  const id = fc.constantFrom(...ids);
  const execId = fc.constantFrom("", "", "e1");
  return fc.commands(
    [
      id.map((i) => new Create(i)),
      fc.tuple(id, execId).map(([i, e]) => new Start(i, e)),
      fc.tuple(id, execId).map(([i, e]) => new Kill9(i, e)),
      fc.tuple(id, fc.constantFrom(0, 65, 0xffffffff)).map(([i, s]) => new KillBadSignal(i, s)),
      fc.tuple(id, execId).map(([i, e]) => new Delete(i, e)),
      fc.tuple(id, execId).map(([i, e]) => new Wait(i, e)),
      fc.tuple(id, execId).map(([i, e]) => new State(i, e)),
      fc.tuple(id, execId).map(([i, e]) => new CloseIO(i, e)),
      id.map((i) => new Pids(i)),
      id.map((i) => new Pause(i)),
      id.map((i) => new Resume(i)),
      id.map((i) => new Exec(i, "e1")),
      fc.tuple(id, execId, fc.constantFrom(80, 0x10000)).map(([i, e, s]) => new ResizePty(i, e, s)),
    ],
    { maxCommands: 14 },
  );
}

/** A command back from its toString() (regression files store sequences that way). */
export function parseCommand(s: string): Cmd {
  const m = /^(\w+)(?:\[(\d+)\])?\(([^/)]*)(?:\/([^)]*))?\)$/.exec(s);
  if (!m) throw new Error(`not a command: ${s}`);
  const [, name, arg, id = "", execId = ""] = m;
  const n = Number(arg);
  switch (name) {
    case "Create":
      return new Create(id);
    case "Start":
      return new Start(id, execId);
    case "Kill9":
      return new Kill9(id, execId);
    case "KillBadSignal":
      return new KillBadSignal(id, n);
    case "Delete":
      return new Delete(id, execId);
    case "Wait":
      return new Wait(id, execId);
    case "State":
      return new State(id, execId);
    case "CloseIO":
      return new CloseIO(id, execId);
    case "Pids":
      return new Pids(id);
    case "Pause":
      return new Pause(id);
    case "Resume":
      return new Resume(id);
    case "Exec":
      return new Exec(id, execId || "e1");
    case "ResizePty":
      return new ResizePty(id, execId, n);
  }
  throw new Error(`unknown command ${name}`);
}
