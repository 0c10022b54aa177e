// SO_PEERCRED: the process on the other end of a connected unix socket (as of its connect()).
import type { Socket } from "node:net";
import { addon } from "./addon.js";

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** The peer of a connected unix socket, given as a net.Socket or a raw fd. */
export function peerCredentials(socket: Socket | number): PeerCredentials {
  return addon().peerCredentials(typeof socket === "number" ? socket : socketFd(socket));
}

/** The fd under a net.Socket (libuv's handle); throws if it has none (closed, or not fd-backed). */
export function socketFd(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) {
    throw Object.assign(new Error("socket has no file descriptor (closed?)"), { code: "EBADF" });
  }
  return fd;
}
