// grpc.health.v1.Health, as containerd's healthcheck plugin serves it (grpc-go's health
// server): the server as a whole ("") is SERVING while tsruncd serves; a service name the API
// does not serve is NotFound for Check, SERVICE_UNKNOWN for Watch. Watch sends the status and
// then waits, as the status never changes while the daemon runs.
import { healthapi } from "@tsrunc/protocol/daemon";
import { Code, TtrpcError } from "@tsrunc/ttrpc";

const { SERVING, SERVICE_UNKNOWN } = healthapi.HealthCheckResponse_ServingStatus;

export class HealthApi {
  /** @param services the wire names served (read at each call) */
  constructor(private readonly services: () => Iterable<string>) {}

  #known(service: string): boolean {
    if (service === "") return true;
    for (const s of this.services()) if (s === service) return true;
    return false;
  }

  check(req: healthapi.HealthCheckRequest): healthapi.HealthCheckResponse {
    if (!this.#known(req.service)) throw new TtrpcError(Code.NotFound, "unknown service");
    return { status: SERVING };
  }

  async *watch(
    req: healthapi.HealthCheckRequest,
    signal: AbortSignal,
  ): AsyncIterable<healthapi.HealthCheckResponse> {
    yield { status: this.#known(req.service) ? SERVING : SERVICE_UNKNOWN };
    if (signal.aborted) return;
    await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
  }
}
