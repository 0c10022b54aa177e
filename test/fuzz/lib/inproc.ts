// In-process checks shared by the coverage-guided campaigns and the regression replays: the frame
// decoder against the reference parser, and our Server with the fuzz service over an in-memory
// connection against the connection model.
import { decodeResponse, encodeRequest, FrameDecoder } from "@tsrunc/ttrpc";
import { answered, judge, predict } from "./conn-model.js";
import { ServerEnd, turns } from "./duplex.js";
import { echoProbe, fuzzProfile, type fuzzServer } from "./fuzz-service.js";
import { HEADER, RefParser, rawFrame, T_REQUEST, type WireEvent } from "./wire.js";

/** Problems when FrameDecoder, fed `bytes` in the given pieces, disagrees with the reference. */
export function decoderProblems(bytes: Uint8Array, cuts: number[]): string[] {
  const got: WireEvent[] = [];
  let err: string | undefined;
  const dec = new FrameDecoder({
    frame: (id, type, flags, data) => got.push({ kind: "frame", id, type, flags, data: Buffer.from(data) }),
    oversize: (id, type, flags, length) => got.push({ kind: "oversize", id, type, flags, length }),
    protocolError: (e) => {
      err = e.message;
      got.push({ kind: "badtype", id: 0, type: 0, flags: 0, length: 0 });
    },
  });
  const ref = new RefParser();
  const want: WireEvent[] = [];
  let at = 0;
  try {
    for (const c of [...cuts, bytes.length]) {
      const end = Math.max(at, Math.min(bytes.length, c));
      dec.push(Buffer.from(bytes.subarray(at, end)));
      ref.push(bytes.subarray(at, end), want);
      at = end;
    }
  } catch (e) {
    return [`decoder threw: ${String(e)}`];
  }
  const norm = (e: WireEvent) =>
    e.kind === "frame"
      ? `frame ${e.id} ${e.type} ${e.flags} ${e.data.toString("hex")}`
      : e.kind === "oversize"
        ? `oversize ${e.id} ${e.type} ${e.flags} ${e.length}`
        : "badtype";
  const a = got.map(norm);
  const b = want.map(norm);
  const problems: string[] = [];
  if (a.join("\n") !== b.join("\n"))
    problems.push(`decoder events differ:\n got ${a.join("; ")}\nwant ${b.join("; ")}`);
  if (err !== undefined && !/unknown message type/.test(err))
    problems.push(`unexpected protocol error ${err}`);
  const tail = ref.tail;
  const mid = tail.state === "header" || tail.state === "body" || tail.state === "skip";
  if (tail.state !== "dead" && dec.midFrame !== mid)
    problems.push(`midFrame ${dec.midFrame}, reference ${tail.state}`);
  return problems;
}

/** decoder-cov: the first byte picks the cut points, so an input always runs the same way. */
export function decoderCovRun(input: Uint8Array): string[] {
  const k = input[0] ?? 0;
  const body = input.subarray(1);
  const cuts = [k % 7, (k * 13) % (HEADER + 3), k % 3 === 0 ? body.length >> 1 : body.length].sort(
    (a, b) => a - b,
  );
  return decoderProblems(body, cuts);
}

/** Feeds `bytes` (in `pieces` writes) to a fresh in-memory connection and judges the answers. */
export async function dispatch(
  env: ReturnType<typeof fuzzServer>,
  bytes: Uint8Array,
  pieces: number,
): Promise<string[]> {
  const end = new ServerEnd();
  env.server.handleConnection(end.asSocket());
  const p = predict(bytes, fuzzProfile());
  const step = Math.max(1, Math.ceil(bytes.length / Math.max(1, pieces)));
  for (let at = 0; at < bytes.length; at += step) {
    end.feed(bytes.subarray(at, at + step));
    await turns(1);
  }
  const parse = () => {
    const ev = new RefParser().push(Buffer.concat(end.written));
    return ev.filter((e) => e.kind === "frame");
  };
  for (let i = 0; i < 30 && !end.destroyed && !answered(p, parse()); i++) await turns(1);
  let probeProblems: string[] = [];
  if (!end.destroyed && !p.mustClose && !p.mayClose && p.tail.state === "clean") {
    const top = Math.max(p.lastId, ...[...p.expected.keys()].filter((id) => id % 2 === 1));
    const id = top === 0 ? 1 : top + 2;
    if (id <= 0xffffffff) {
      end.feed(rawFrame(id, T_REQUEST, 0, encodeRequest(echoProbe.call)));
      for (let i = 0; i < 30 && !parse().some((f) => f.id === id); i++) await turns(1);
      const f = parse().find((fr) => fr.id === id);
      if (!f)
        probeProblems = [end.destroyed ? "closed instead of answering the probe" : "probe not answered"];
      else if (decodeResponse(f.data).status.code !== 0) probeProblems = ["probe failed"];
      const problems = judge(
        p,
        parse().filter((fr) => fr.id !== id),
        end.destroyed,
      );
      end.destroy();
      await turns(2);
      return [...problems, ...probeProblems];
    }
  }
  if (p.mustClose) for (let i = 0; i < 30 && !end.destroyed; i++) await turns(1);
  const problems = judge(p, parse(), end.destroyed);
  end.destroy();
  await turns(2);
  return problems;
}

/** dispatcher-cov: the first byte picks how many writes the rest is cut into. */
export function dispatcherCovRun(env: ReturnType<typeof fuzzServer>, input: Uint8Array): Promise<string[]> {
  return dispatch(env, input.subarray(1), ((input[0] ?? 0) % 4) + 1);
}
