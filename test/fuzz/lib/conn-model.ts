// A model of what a ttrpc server must do with one connection's byte stream, written from the
// protocol rules in packages/ttrpc/README.md (not from server.ts), and the oracle that compares
// a real server's answers with it.
//
// Some outcomes depend on timing the client cannot control: data on a stream whose call ends
// asynchronously is a protocol violation if the call is still open and is ignored if it has
// ended. The model keeps such points as "may close here"; after one, it only checks what it can.
// Answers queued before a close may be dropped with the connection, so a close makes the
// expected answers optional, never the unexpected ones acceptable.
import { decodeRequest, decodeResponse } from "@tsrunc/ttrpc";
import {
  F_REMOTE_CLOSED,
  type Frame,
  parseAll,
  type RefParser,
  T_DATA,
  T_REQUEST,
  T_RESPONSE,
} from "./wire.js";

export type Kind = "unary" | "server" | "client" | "bidi";
/** When a call ends once its input allows: within the frame's processing, a few turns later, or only with the connection. */
export type Finish = "sync" | "async" | "never";

export interface MethodProfile {
  kind: Kind;
  finish: Finish;
  /** Status codes a final Response may carry for this request payload (0 = OK). */
  codes(payload: Uint8Array): ReadonlySet<number>;
}

export interface ServerProfile {
  /** undefined: the server answers Unimplemented. */
  lookup(service: string, method: string): MethodProfile | undefined;
  maxStreams: number;
}

interface CallModel {
  kind: Kind;
  finish: Finish;
  inputOpen: boolean;
  /** The answer this call owes. */
  exp: Expectation;
}

/** One answer the server owes (or may owe) on a stream id. */
export interface Expectation {
  /** Codes a final Response may carry. */
  codes: ReadonlySet<number>;
  /** Data frames may precede the final answer (server and bidi streams). */
  streams: boolean;
  /** The final answer must arrive if the connection stays open. */
  required: boolean;
}

export interface Prediction {
  /** The connection must be closed by the server. */
  mustClose: boolean;
  /** The server may close it (timing decides). */
  mayClose: boolean;
  /** Answers per stream id, in order. */
  expected: Map<number, Expectation[]>;
  /** Where the byte stream stands at its end. */
  tail: RefParser["tail"];
  /** Highest request id the server accepted (the next one must be greater). */
  lastId: number;
  /** Calls still open at the end, by id (a probe must not disturb them). */
  open: number;
  /** Why the model expects a close (for failure messages). */
  reason: string;
}

const RE = new Set([8]);
const INVALID = new Set([3]);
const UNIMPLEMENTED = new Set([12]);

export function predict(bytes: Uint8Array, profile: ServerProfile): Prediction {
  const { events, tail } = parseAll(bytes);
  const expected = new Map<number, Expectation[]>();
  const calls = new Map<number, CallModel>();
  let last = 0;
  let mustClose = false;
  let mayClose = false;
  let reason = "";
  const expect = (id: number, e: Expectation) => {
    const list = expected.get(id) ?? [];
    list.push(e);
    expected.set(id, list);
  };
  const maybeClose = (why: string) => {
    if (!mayClose) reason = why;
    mayClose = true;
  };

  for (const ev of events) {
    if (ev.kind === "badtype") {
      mustClose = true;
      reason ||= `unknown message type ${ev.type}`;
      break;
    }
    if (ev.kind === "oversize") {
      // Answered on its id whatever the id is; an open call on it ends.
      const call = ev.type === T_DATA ? calls.get(ev.id) : undefined;
      if (call) {
        call.exp.codes = new Set([...call.exp.codes, 8]);
        // A call that may already have ended gets the answer as a separate frame instead. That
        // holds with its input still open too: a client stream may be refused on its first
        // message (ImageTools.Import of a bad archive) before the oversized frame is read.
        if (call.finish !== "never") expect(ev.id, { codes: RE, streams: false, required: false });
        calls.delete(ev.id);
      } else {
        expect(ev.id, { codes: RE, streams: false, required: true });
      }
      continue;
    }
    const { id, type, flags, data } = ev;
    if (id === 0 || id % 2 === 0) {
      mustClose = true;
      reason ||= `stream id ${id}`;
      break;
    }
    if (type === T_RESPONSE) {
      mustClose = true;
      reason ||= "a Response sent to the server";
      break;
    }
    if (type === T_REQUEST) {
      if (id <= last) {
        mustClose = true;
        reason ||= `request id ${id} not above ${last}`;
        break;
      }
      last = id;
      if (calls.size >= profile.maxStreams) {
        expect(id, { codes: RE, streams: false, required: true });
        continue;
      }
      let req: ReturnType<typeof decodeRequest>;
      try {
        req = decodeRequest(data);
      } catch {
        expect(id, { codes: INVALID, streams: false, required: true });
        continue;
      }
      const m = profile.lookup(req.service, req.method);
      if (!m) {
        expect(id, { codes: UNIMPLEMENTED, streams: false, required: true });
        continue;
      }
      // A deadline may end any call early.
      const timed = req.timeoutNano > 0 && req.timeoutNano < 60e9;
      const codes = new Set(m.codes(req.payload ?? new Uint8Array(0)));
      let finish = m.finish;
      if (timed) {
        codes.add(4);
        codes.add(1);
        if (finish === "never") finish = "async";
      }
      const streams = m.kind === "server" || m.kind === "bidi";
      const inputs = m.kind === "client" || m.kind === "bidi";
      const inputOpen = inputs && (flags & F_REMOTE_CLOSED) === 0;
      // A streaming-input call whose input is still open owes nothing yet.
      const required = finish !== "never" && !inputOpen && !timed;
      const exp: Expectation = { codes, streams, required };
      expect(id, exp);
      if (finish !== "sync" || inputOpen) calls.set(id, { kind: m.kind, finish, inputOpen, exp });
      continue;
    }
    // T_DATA
    const call = calls.get(id);
    if (!call) {
      if (id > last) {
        mustClose = true;
        reason ||= `data on never-opened stream ${id}`;
        break;
      }
      continue; // a stream that already ended: ignored
    }
    if (call.kind === "unary" || call.kind === "server") {
      if (call.finish === "never") {
        mustClose = true;
        reason ||= `data on ${call.kind} stream ${id}`;
        break;
      }
      // Closes if the call is still open, is ignored if it has ended.
      maybeClose(`data on ${call.kind} stream ${id} (may have ended)`);
      calls.delete(id);
      continue;
    }
    if (call.inputOpen) {
      if ((flags & F_REMOTE_CLOSED) !== 0) {
        call.inputOpen = false;
        if (call.finish !== "never") call.exp.required = true;
      }
      continue;
    }
    // Data after the client closed its side: a violation while the call lasts.
    if (call.finish === "never") {
      mustClose = true;
      reason ||= `data on stream ${id} after remote-closed`;
      break;
    }
    maybeClose(`data on stream ${id} after remote-closed (may have ended)`);
    calls.delete(id);
  }
  if (mustClose || mayClose) for (const list of expected.values()) for (const e of list) e.required = false;
  return { mustClose, mayClose, expected, tail, lastId: last, open: calls.size, reason };
}

/** Checks what a server sent against the prediction; returns the problems found. */
export function judge(p: Prediction, frames: readonly Frame[], closed: boolean): string[] {
  const problems: string[] = [];
  if (p.mustClose && !closed) problems.push(`connection still open, expected a close (${p.reason})`);
  if (!p.mustClose && !p.mayClose && closed) problems.push("connection closed without a protocol violation");
  const byId = new Map<number, Frame[]>();
  for (const f of frames) {
    const list = byId.get(f.id) ?? [];
    list.push(f);
    byId.set(f.id, list);
  }
  for (const [id, list] of byId) {
    // Answers on one id need not come in request order (an oversized frame is answered at
    // once on the id of a call still running), and one code may suit several owed answers (an
    // oversized frame's RE may also be among a call's codes): the final Responses are matched
    // to owed answers at the end, each to a different one, leaving as few required ones
    // unmatched as possible.
    const owed = [...(p.expected.get(id) ?? [])];
    const codes: number[] = [];
    for (const f of list) {
      if (f.type === T_DATA) {
        const final = (f.flags & F_REMOTE_CLOSED) !== 0;
        const i = owed.findIndex((e) => e.streams && (!final || e.codes.has(0)));
        if (i < 0) {
          problems.push(`unexpected data frame (flags ${f.flags}) on stream ${id}`);
          break;
        }
        if (final) owed.splice(i, 1);
        continue;
      }
      if (f.type !== T_RESPONSE) {
        problems.push(`frame of type ${f.type} from the server on ${id}`);
        break;
      }
      const code = responseCode(f);
      if (code === undefined) {
        problems.push(`undecodable Response on stream ${id}`);
        break;
      }
      codes.push(code);
    }
    const m = matchCodes(codes, owed);
    if (m.unexpected !== undefined)
      problems.push(`stream ${id}: unexpected Response with code ${m.unexpected}`);
    else if (m.missing > 0) problems.push(`stream ${id}: answer missing`);
  }
  for (const [id, list] of p.expected) {
    if (byId.has(id)) continue;
    if (list.some((e) => e.required)) problems.push(`stream ${id}: no answer`);
  }
  return problems;
}

/**
 * Assigns each code to a different owed answer that accepts it, leaving the fewest required
 * answers unassigned: `unexpected` is a code no assignment can place, `missing` the required
 * answers left over. Small inputs (a few answers per id): a search, bounded, then greedy.
 */
function matchCodes(codes: number[], owed: Expectation[]): { unexpected?: number; missing: number } {
  const used = new Array<boolean>(owed.length).fill(false);
  let best = Number.POSITIVE_INFINITY;
  let steps = 0;
  const search = (k: number): boolean => {
    if (++steps > 20000) return false;
    if (k === codes.length) {
      best = Math.min(best, owed.filter((e, j) => e.required && !used[j]).length);
      return best === 0;
    }
    for (const [j, e] of owed.entries()) {
      if (used[j] || !e.codes.has(codes[k]!)) continue;
      used[j] = true;
      const done = search(k + 1);
      used[j] = false;
      if (done) return true;
    }
    return false;
  };
  search(0);
  if (best !== Number.POSITIVE_INFINITY) return { missing: best };
  // No complete assignment (or the search gave up): the first code greedy matching cannot place.
  const left = [...owed];
  for (const c of codes) {
    const i = left.findIndex((e) => e.codes.has(c));
    if (i < 0) return { unexpected: c, missing: 0 };
    left.splice(i, 1);
  }
  return { missing: left.filter((e) => e.required).length };
}

/** True once every required answer is among `frames`. */
export function answered(p: Prediction, frames: readonly Frame[]): boolean {
  const finals = new Map<number, number>();
  for (const f of frames) {
    if (f.type === T_RESPONSE || (f.type === T_DATA && (f.flags & F_REMOTE_CLOSED) !== 0)) {
      finals.set(f.id, (finals.get(f.id) ?? 0) + 1);
    }
  }
  for (const [id, list] of p.expected) {
    const need = list.filter((e) => e.required).length;
    if (need > 0 && (finals.get(id) ?? 0) < list.findLastIndex((e) => e.required) + 1) return false;
  }
  return true;
}

export function responseCode(f: Frame): number | undefined {
  try {
    return decodeResponse(f.data).status.code;
  } catch {
    return undefined;
  }
}
