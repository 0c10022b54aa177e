// tsctl's connection to the daemon, from the global options.

import { Code, isCode, TtrpcError } from "@tsrunc/ttrpc";
import { connect, type TsruncClient } from "../client.js";
import type { Globals } from "./globals.js";

/** How long tsctl waits for the daemon to accept the connection. */
export const CONNECT_TIMEOUT_MS = 10_000;

export function connectTo(g: Globals): Promise<TsruncClient> {
  return connect({ address: g.address, namespace: g.namespace, timeoutMs: CONNECT_TIMEOUT_MS });
}

/**
 * Runs `fn` with a connection, closing it afterwards. A connection lost on the way is reported
 * as such (rather than as ttrpc's "connection closed").
 */
export async function withClient<T>(g: Globals, fn: (client: TsruncClient) => Promise<T>): Promise<T> {
  const client = await connectTo(g);
  try {
    return await fn(client);
  } catch (err) {
    if (isCode(err, Code.Unavailable) && !client.connected) {
      throw new TtrpcError(Code.Unavailable, `lost the connection to tsruncd at ${client.address}`, {
        cause: err,
      });
    }
    throw err;
  } finally {
    await client.close();
  }
}
