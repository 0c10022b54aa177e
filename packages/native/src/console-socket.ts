// The receiving end of runc's --console-socket: runc connects and sends the pty master over
// SCM_RIGHTS. Non-blocking on the event loop; see fd_receiver.cc.
import { closeSync } from "node:fs";
import { addon } from "./addon.js";

export interface ReceiveFdOptions {
  /** Reject with code ETIMEDOUT after this long; default 30 s; 0 or Infinity: never. */
  timeoutMs?: number;
  /** Aborting rejects with the signal's reason and removes the socket. */
  signal?: AbortSignal;
}

/**
 * Binds a unix stream socket at socketPath (mode 0600; put it in a private directory, and the
 * path must not exist yet), accepts one connection and resolves with the first fd it receives
 * (SCM_RIGHTS); the fd is close-on-exec and now the caller's (see openPty, closeFd). The socket
 * file is removed once the connection is accepted or the wait fails. Errors carry Node's code:
 * EADDRINUSE, ETIMEDOUT, ECONNRESET (closed without an fd), EPROTO (data without an fd), …
 */
export async function receiveFd(socketPath: string, options: ReceiveFdOptions = {}): Promise<number> {
  const { timeoutMs = 30_000, signal } = options;
  signal?.throwIfAborted();
  const receiver = new (addon().FdReceiver)(socketPath, Number.isFinite(timeoutMs) ? timeoutMs : 0);
  const onAbort = () => receiver.cancel();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    return await receiver.promise;
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    throw error;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/** close(2). For an fd that has not been handed to a stream (a stream closes its own). */
export function closeFd(fd: number): void {
  closeSync(fd);
}
