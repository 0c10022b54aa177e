// A connection without a socket: two Duplex ends joined back to back, so that a Client and a
// Server in one process can talk (services unit-tested without a socket file). Each end behaves
// like a connected unix socket as far as ttrpc can tell: what one writes the other reads
// (copied, as through the kernel), ending one side ends the other's reading, and a reader that
// stops reading holds the writer back (write() returns false, 'drain' comes later).

import { Duplex } from "node:stream";
import type { PeerCredentials } from "./call-context.js";
import { Client, type ClientOptions } from "./client.js";
import type { Server } from "./server.js";

class MemoryEnd extends Duplex {
  #peer: MemoryEnd | undefined;
  /** The peer has been told that nothing more comes from us. */
  #peerEnded = false;
  /** Completes our last write once the peer wants more. */
  #blockedWrite: (() => void) | undefined;

  constructor() {
    // A socket's defaults: when the peer's side ends, ours ends too.
    super({ allowHalfOpen: false });
  }

  static pair(): [MemoryEnd, MemoryEnd] {
    const a = new MemoryEnd();
    const b = new MemoryEnd();
    a.#peer = b;
    b.#peer = a;
    return [a, b];
  }

  override _read(): void {
    // We want more: the peer's held-back write may complete.
    const peer = this.#peer;
    if (peer === undefined) return;
    const done = peer.#blockedWrite;
    peer.#blockedWrite = undefined;
    done?.();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this._writev([{ chunk }], done);
  }

  override _writev(chunks: { chunk: Buffer }[], done: (err?: Error | null) => void): void {
    const peer = this.#peer;
    if (peer === undefined || this.#peerEnded || peer.destroyed) {
      // Nobody reads any more: the bytes are lost, as on a socket whose peer has gone.
      done();
      return;
    }
    let more = true;
    for (const { chunk } of chunks) more = peer.push(Buffer.from(chunk));
    if (more) done();
    else this.#blockedWrite = done;
  }

  override _final(done: (err?: Error | null) => void): void {
    this.#endPeer();
    done();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    const peer = this.#peer;
    if (peer !== undefined) {
      // What the peer was writing to us will never be read: let its write complete.
      const blocked = peer.#blockedWrite;
      peer.#blockedWrite = undefined;
      blocked?.();
    }
    this.#endPeer();
    done(err);
  }

  #endPeer(): void {
    if (this.#peerEnded) return;
    this.#peerEnded = true;
    const peer = this.#peer;
    if (peer !== undefined && !peer.destroyed) peer.push(null);
  }
}

/** Two connected in-memory ends: give one to Server.serveConnection(), the other to new Client(). */
export function memoryPair(): [Duplex, Duplex] {
  return MemoryEnd.pair();
}

export interface InMemoryOptions extends ClientOptions {
  /** What the server's handlers see as ctx.peer. */
  peer?: PeerCredentials;
}

/**
 * A Client connected to `server` through memoryPair(). Closing the client closes the server's
 * side of the connection; closing the server fails the client's calls with Unavailable.
 */
export function serveInMemory(server: Server, opts: InMemoryOptions = {}): Client {
  const [clientEnd, serverEnd] = memoryPair();
  server.serveConnection(serverEnd, opts.peer);
  return new Client(clientEnd, { interceptors: opts.interceptors });
}
