// The shim server's interceptors (ttrpc's `next => call => Promise` shape): what every Task call
// gets around it, kept out of the handlers themselves.

import { trimWhenIdle } from "@tsrunc/native/trim";
import type { ServerInterceptor } from "@tsrunc/ttrpc";
import type { Logger } from "pino";

/** After each call, schedule a malloc trim for when the shim goes idle (see @tsrunc/native/trim). */
export const idleTrim: ServerInterceptor = (next) => (call) => next(call).finally(() => trimWhenIdle());

/** With -debug: one line when a call starts and one when it ends (with its duration or error). */
export function tracing(log: Logger): ServerInterceptor {
  return (next) => async (call) => {
    const req = (call.request ?? {}) as { id?: string; execId?: string };
    const fields = { method: call.method, id: req.id, exec_id: req.execId };
    const started = performance.now();
    log.debug(fields, "call start");
    try {
      const res = await next(call);
      log.debug({ ...fields, ms: performance.now() - started }, "call");
      return res;
    } catch (err) {
      log.debug({ ...fields, err: (err as Error).message }, "call failed");
      throw err;
    }
  };
}
