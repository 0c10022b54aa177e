// Runs one hostile case on a fresh connection and judges the server's answers against the
// connection model: the right close or no close, only expected answers, every owed answer,
// and, when the connection should still be usable, a well-formed probe answered on it.
import { encodeRequest } from "@tsrunc/ttrpc";
import { answered, judge, type Prediction, predict, responseCode, type ServerProfile } from "./conn-model.js";
import { type CallSpec, type Case, chunksOf } from "./frame-arbs.js";
import { RawConn, rawFrame, T_REQUEST } from "./wire.js";

export interface Probe {
  call: CallSpec;
  /** The code the probe must be answered with. */
  code: number;
}

export interface CaseResult {
  problems: string[];
  prediction: Prediction;
  closed: boolean;
  bytes: number;
}

export interface RunOptions {
  /** How long owed answers may take (ms). */
  answerMs?: number;
}

export async function runCase(
  path: string,
  profile: ServerProfile,
  probe: Probe,
  c: Case,
  opts: RunOptions = {},
): Promise<CaseResult> {
  const answerMs = opts.answerMs ?? 1000;
  const { bytes, chunks } = chunksOf(c);
  const p = predict(bytes, profile);
  const conn = await RawConn.open(path);
  try {
    await conn.send(chunks, c.gapMs);
    if (p.mustClose) await conn.whenClosed(answerMs);
    else await conn.until(() => answered(p, conn.frames), p.mayClose ? 300 : answerMs);
    const problems: string[] = [];
    // Above every id the case used, so that no answer owed to the case is taken for the probe's.
    const top = Math.max(p.lastId, ...[...p.expected.keys()].filter((id) => id % 2 === 1));
    const probeId = top === 0 ? 1 : top + 2;
    // A probe on the same connection, when the stream is between frames and an id is left.
    if (!conn.closed && !p.mustClose && p.tail.state === "clean" && probeId <= 0xffffffff) {
      const id = probeId;
      conn.socket.write(rawFrame(id, T_REQUEST, 0, encodeRequest(probe.call)));
      const ok = await conn.until(() => conn.framesOn(id).length > 0, answerMs);
      if (ok) {
        const f = conn.framesOn(id)[0]!;
        const code = responseCode(f);
        if (code !== probe.code) problems.push(`probe answered with code ${code}, expected ${probe.code}`);
      } else if (!conn.closed) {
        problems.push("probe not answered on a connection that should be usable (hang)");
      } else if (!p.mayClose) {
        problems.push("connection closed instead of answering the probe");
      }
    } else if (!conn.closed && !p.mustClose && !p.mayClose) {
      // Mid-frame or mid-skip: the server waits for the rest; nothing must be answered wrongly.
      await new Promise((r) => setTimeout(r, 20));
    }
    const frames = conn.frames.filter((f) => f.id !== probeId);
    problems.push(...judge(p, frames, conn.closed));
    if (conn.garbage.length) problems.push(`server sent ${conn.garbage.length} malformed frame(s)`);
    return { problems, prediction: p, closed: conn.closed, bytes: bytes.length };
  } finally {
    conn.destroy();
  }
}
