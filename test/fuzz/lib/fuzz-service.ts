// A trivial service for fuzzing our ttrpc Server in-process: one method per stream kind and
// timing (answers at once, fails at once, never answers, streams), raw bytes as messages, and
// the profile the connection model needs to predict its answers.
import type { MessageCodec, MethodDescriptor, ServiceImpl, StreamKind } from "@tsrunc/ttrpc";
import { Code, Server, type ServerOptions, TtrpcError } from "@tsrunc/ttrpc";
import fc from "fast-check";
import type { MethodProfile, ServerProfile } from "./conn-model.js";
import type { CallSpec } from "./frame-arbs.js";

/** Messages are the bytes themselves, copied out of the read buffer. */
const bytes: MessageCodec<Uint8Array> = { encode: (b) => b, decode: (b) => Uint8Array.from(b) };

function method<K extends StreamKind>(name: string, kind: K): MethodDescriptor<Uint8Array, Uint8Array, K> {
  return { name, kind, requestType: bytes, responseType: bytes };
}

export const FuzzService = {
  name: "tsrunc.fuzz.v1.Fuzz",
  methods: {
    echo: method("Echo", "unary"),
    fail: method("Fail", "unary"),
    hang: method("Hang", "unary"),
    count: method("Count", "server"),
    sum: method("Sum", "client"),
    chat: method("Chat", "bidi"),
  },
} as const;

export interface FuzzServerStats {
  /** Hang handlers still waiting: must drop to 0 once their connections are gone. */
  hanging: number;
  /** Streaming handlers still running. */
  streaming: number;
  errors: Error[];
}

export function fuzzServer(opts: ServerOptions = {}): { server: Server; stats: FuzzServerStats } {
  const stats: FuzzServerStats = { hanging: 0, streaming: 0, errors: [] };
  const server = new Server({
    ...opts,
    onError: (err) => {
      if (stats.errors.length < 100) stats.errors.push(err);
    },
  });
  const impl: ServiceImpl<typeof FuzzService> = {
    echo: (req) => req,
    fail: () => {
      throw new TtrpcError(Code.NotFound, "fuzz: not found");
    },
    hang: (_req, ctx) => {
      stats.hanging++;
      return new Promise<Uint8Array>((_resolve, reject) => {
        const done = () => {
          stats.hanging--;
          reject(ctx.signal.reason);
        };
        if (ctx.signal.aborted) done();
        else ctx.signal.addEventListener("abort", done, { once: true });
      });
    },
    count: async function* (req) {
      const n = (req[0] ?? 0) % 4;
      for (let i = 0; i < n; i++) yield Uint8Array.of(i);
    },
    sum: async (reqs) => {
      stats.streaming++;
      try {
        let n = 0;
        for await (const _ of reqs) n++;
        return Buffer.from(String(n));
      } finally {
        stats.streaming--;
      }
    },
    chat: async function* (reqs) {
      stats.streaming++;
      try {
        for await (const m of reqs) yield m;
      } finally {
        stats.streaming--;
      }
    },
  };
  server.register(FuzzService, impl);
  return { server, stats };
}

const profiles: Record<string, MethodProfile> = {
  Echo: { kind: "unary", finish: "sync", codes: () => new Set([0]) },
  Fail: { kind: "unary", finish: "sync", codes: () => new Set([5]) },
  Hang: { kind: "unary", finish: "never", codes: () => new Set<number>() },
  Count: { kind: "server", finish: "async", codes: () => new Set([0]) },
  Sum: { kind: "client", finish: "async", codes: () => new Set([0]) },
  Chat: { kind: "bidi", finish: "async", codes: () => new Set([0]) },
};

export function fuzzProfile(maxStreams = 1024): ServerProfile {
  return {
    maxStreams,
    lookup: (service, m) =>
      service === FuzzService.name && Object.hasOwn(profiles, m) ? profiles[m] : undefined,
  };
}

/** Calls of the fuzz service, plus unknown services and methods. */
export const fuzzCalls: fc.Arbitrary<CallSpec> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      service: fc.constant(FuzzService.name),
      method: fc.constantFrom("Echo", "Fail", "Hang", "Count", "Sum", "Chat"),
      payload: fc.option(fc.uint8Array({ maxLength: 32 }), { nil: undefined }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      service: fc.oneof(fc.constant(FuzzService.name), fc.string({ maxLength: 40 })),
      method: fc.oneof(fc.constantFrom("echo", "", "Echo\0", "__proto__", "constructor"), fc.string()),
      payload: fc.option(fc.uint8Array({ maxLength: 16 }), { nil: undefined }),
    }),
  },
);

export const echoProbe = {
  call: { service: FuzzService.name, method: "Echo", payload: Buffer.from("probe") },
  code: 0,
};
