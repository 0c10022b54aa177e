// tsctl's connection to the daemon, from the global options.

import { connect, type TsruncClient } from "../client.js";
import type { Globals } from "./globals.js";

/** How long tsctl waits for the daemon to accept the connection. */
export const CONNECT_TIMEOUT_MS = 10_000;

export function connectTo(g: Globals): Promise<TsruncClient> {
  return connect({ address: g.address, namespace: g.namespace, timeoutMs: CONNECT_TIMEOUT_MS });
}

/** Runs `fn` with a connection, closing it afterwards. */
export async function withClient<T>(g: Globals, fn: (client: TsruncClient) => Promise<T>): Promise<T> {
  const client = await connectTo(g);
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}
