// Who may use tsruncd's socket: root (and the daemon's own uid), and the members of the group the
// admin names with --group. The socket file's mode (0600, or root:group 0660 with --group) keeps
// others from connecting at all; this is the check behind it, by the kernel's account of the peer
// (SO_PEERCRED) rather than by the file's mode alone, so a socket passed on or a mode changed by
// hand does not widen who gets in.
//
// Credentials are read once per connection when it is accepted (ttrpc's peerCredentials hook),
// and so are the peer's supplementary groups (/proc/<pid>/status) when its uid and primary gid do
// not already decide: reading them then, while the peer has just connected, keeps the window for
// a pid reused by another process as small as it gets; a status whose effective uid is not the
// peer's is taken as such a reuse and refused. The verdict is kept with the connection's
// credentials object (the same for every call of a connection) and enforced by a server
// interceptor, so a refused client gets PermissionDenied (code 7) on its first call rather than a
// silent close, and every call after it is refused without reading anything again.
import { readFileSync } from "node:fs";
import type { Socket } from "node:net";
import { peerCredentials as nativePeerCredentials } from "@tsrunc/native/peer-credentials";
import { Code, type PeerCredentials, type ServerInterceptor, TtrpcError } from "@tsrunc/ttrpc";
import type { Logger } from "pino";

export interface PeerAccessOptions {
  /** The --group gid; undefined: root (and our own uid) only. */
  gid: number | undefined;
  log: Pick<Logger, "warn">;
  /** Our effective uid (admitted like root: the socket file is ours anyway). Default process.geteuid(). */
  selfUid?: number;
  /** SO_PEERCRED of an accepted socket (tests pass their own). */
  credentials?: (socket: Socket) => PeerCredentials;
  /** /proc/<pid>/status of the peer, or undefined when it is gone (tests pass their own). */
  procStatus?: (pid: number) => string | undefined;
}

export interface PeerAccess {
  /** For ServerOptions.peerCredentials: reads the credentials and decides, at accept time. */
  peerCredentials: (socket: Socket) => PeerCredentials;
  /** For ServerOptions.interceptors (outermost): refuses every call of a refused connection. */
  interceptor: ServerInterceptor;
}

interface Verdict {
  admitted: boolean;
  /** Why a refused peer was refused (sent to it, logged). */
  reason?: string;
}

function readProcStatus(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
}

/** The numbers on a `Name:\t1 2 3` line of /proc/<pid>/status; undefined when the line is missing. */
export function statusField(status: string, name: string): number[] | undefined {
  const line = status.split("\n").find((l) => l.startsWith(`${name}:`));
  if (line === undefined) return undefined;
  return line
    .slice(name.length + 1)
    .trim()
    .split(/\s+/)
    .filter((w) => /^[0-9]+$/.test(w))
    .map(Number);
}

export function peerAccess(opts: PeerAccessOptions): PeerAccess {
  const { gid, log } = opts;
  const selfUid = opts.selfUid ?? process.geteuid?.() ?? 0;
  const credentials = opts.credentials ?? ((s: Socket) => nativePeerCredentials(s));
  const procStatus = opts.procStatus ?? readProcStatus;
  const verdicts = new WeakMap<PeerCredentials, Verdict>();

  const decide = (peer: PeerCredentials): Verdict => {
    if (peer.uid === 0 || peer.uid === selfUid) return { admitted: true };
    const who = `uid ${peer.uid}`;
    if (gid === undefined)
      return { admitted: false, reason: `${who} is not root (tsruncd runs without --group)` };
    if (peer.gid === gid) return { admitted: true };
    // pid 0: the peer is in a pid namespace we cannot see, so its groups are unknown.
    const status = peer.pid > 0 ? procStatus(peer.pid) : undefined;
    const effectiveUid = status === undefined ? undefined : statusField(status, "Uid")?.[1];
    if (status === undefined || effectiveUid !== peer.uid) {
      return { admitted: false, reason: `${who}: cannot read the groups of pid ${peer.pid}` };
    }
    if (statusField(status, "Groups")?.includes(gid)) return { admitted: true };
    return { admitted: false, reason: `${who} is neither root nor in group ${gid}` };
  };

  const verdictFor = (peer: PeerCredentials): Verdict => {
    let v = verdicts.get(peer);
    if (v === undefined) {
      v = decide(peer);
      verdicts.set(peer, v);
      if (!v.admitted)
        log.warn({ uid: peer.uid, gid: peer.gid, pid: peer.pid, reason: v.reason }, "peer refused");
    }
    return v;
  };

  return {
    peerCredentials: (socket) => {
      const peer = credentials(socket);
      verdictFor(peer);
      return peer;
    },
    interceptor: (next) => (call) => {
      const peer = call.ctx.peer;
      const v: Verdict =
        peer === undefined ? { admitted: false, reason: "peer credentials unknown" } : verdictFor(peer);
      if (!v.admitted) {
        return Promise.reject(
          new TtrpcError(Code.PermissionDenied, `tsruncd: permission denied: ${v.reason}`),
        );
      }
      return next(call);
    },
  };
}
