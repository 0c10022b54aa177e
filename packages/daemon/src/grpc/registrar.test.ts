// The gRPC registrar with a real grpc-js server and client on a unix socket: a handler written
// for ttrpc answers over gRPC (unary, server stream), its TtrpcError codes arrive as gRPC
// statuses, anything else as Unknown, metadata reaches it lowercased, the client's cancel and
// deadline abort its signal, and unknown methods answer with Go gRPC's words.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { EventsService, type eventsapi, VersionService } from "@tsrunc/protocol/daemon";
import { Code, TtrpcError } from "@tsrunc/ttrpc";
import t from "tap";
import { GrpcRegistrar, grpcDefinitionOf } from "./registrar.js";
import { answerUnknownMethods, unknownMethodMessage } from "./unknown.js";

const dir = mkdtempSync(join(tmpdir(), "grpc-reg-"));
const address = `unix://${join(dir, "s.sock")}`;
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

let versionBehaviour: "ok" | "notfound" | "plain" = "ok";
let lastNamespace: string[] | undefined;
const aborted: unknown[] = [];

const server = new grpc.Server();
const registrar = new GrpcRegistrar(server);
registrar.register(VersionService, {
  version: (_req, ctx) => {
    lastNamespace = ctx.metadata["containerd-namespace"];
    if (versionBehaviour === "notfound") throw new TtrpcError(Code.NotFound, "no such thing");
    if (versionBehaviour === "plain") throw new Error("boom");
    return { version: "1.2.3", revision: "r" };
  },
});
registrar.register(EventsService, {
  publish: () => ({}),
  forward: () => ({}),
  subscribe: async function* (req, ctx) {
    for (const topic of req.filters) yield { topic, namespace: "n" } as eventsapi.Envelope;
    // Then wait until the client goes away or the deadline passes.
    await new Promise<void>((resolve) =>
      ctx.signal.addEventListener("abort", () => resolve(), { once: true }),
    );
    aborted.push(ctx.signal.reason);
  },
});
answerUnknownMethods(server, registrar.services, () => {});
await new Promise<void>((resolve, reject) =>
  server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err) =>
    err ? reject(err) : resolve(),
  ),
);
t.teardown(() => server.forceShutdown());

const Version = grpc.makeGenericClientConstructor(grpcDefinitionOf(VersionService), "Version");
const Events = grpc.makeGenericClientConstructor(grpcDefinitionOf(EventsService), "Events");
const version = new Version(address, grpc.credentials.createInsecure()) as unknown as {
  version(
    req: object,
    md: grpc.Metadata,
    cb: (err: grpc.ServiceError | null, res?: { version: string }) => void,
  ): void;
  close(): void;
};
const events = new Events(address, grpc.credentials.createInsecure()) as unknown as {
  subscribe(
    req: object,
    md: grpc.Metadata,
    opts?: grpc.CallOptions,
  ): grpc.ClientReadableStream<eventsapi.Envelope>;
  close(): void;
};
t.teardown(() => {
  version.close();
  events.close();
});

function callVersion(md = new grpc.Metadata()) {
  return new Promise<{ err: grpc.ServiceError | null; res?: { version: string } }>((resolve) =>
    version.version({}, md, (err, res) => resolve({ err, ...(res ? { res } : {}) })),
  );
}

t.test("unary: answer, codes, metadata", async (t) => {
  const md = new grpc.Metadata();
  md.set("Containerd-Namespace", "ns1");
  versionBehaviour = "ok";
  const ok = await callVersion(md);
  t.equal(ok.err, null);
  t.equal(ok.res?.version, "1.2.3");
  t.same(lastNamespace, ["ns1"], "metadata keys arrive lowercased");
  versionBehaviour = "notfound";
  const nf = await callVersion();
  t.equal(nf.err?.code, 5);
  t.equal(nf.err?.details, "no such thing");
  versionBehaviour = "plain";
  const plain = await callVersion();
  t.equal(plain.err?.code, 2, "a plain Error is Unknown");
  t.equal(plain.err?.details, "boom");
});

t.test("server stream: messages, then the client's cancel aborts the handler's signal", async (t) => {
  const stream = events.subscribe({ filters: ["/a", "/b"] }, new grpc.Metadata());
  const topics: string[] = [];
  await new Promise<void>((resolve) => {
    stream.on("data", (e: eventsapi.Envelope) => {
      topics.push(e.topic);
      if (topics.length === 2) resolve();
    });
  });
  t.same(topics, ["/a", "/b"]);
  stream.on("error", () => {});
  stream.cancel();
  await new Promise((r) => setTimeout(r, 200));
  t.equal((aborted[0] as TtrpcError | undefined)?.code, Code.Canceled, "Canceled");
});

t.test("a deadline aborts the handler's signal with DeadlineExceeded", async (t) => {
  const stream = events.subscribe({ filters: [] }, new grpc.Metadata(), { deadline: Date.now() + 300 });
  const err = await new Promise<grpc.ServiceError>((resolve) => stream.on("error", resolve));
  t.equal(err.code, 4, "the client sees DEADLINE_EXCEEDED");
  await new Promise((r) => setTimeout(r, 200));
  t.ok(
    aborted.some((r) => (r as TtrpcError).code === Code.DeadlineExceeded),
    "the handler saw DeadlineExceeded",
  );
});

t.test("unknown services and methods: Unimplemented, Go gRPC's message", async (t) => {
  t.equal(unknownMethodMessage("/a.B/C", new Set(["a.B"])), "unknown method C for service a.B");
  t.equal(unknownMethodMessage("/x.Y/Z", new Set()), "unknown service x.Y");
  t.equal(unknownMethodMessage("nonsense", new Set()), 'malformed method name: "nonsense"');
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  t.teardown(() => client.close());
  const call = (path: string) =>
    new Promise<grpc.ServiceError | null>((resolve) =>
      client.makeUnaryRequest(
        path,
        (x: Buffer) => x,
        (x: Buffer) => x,
        Buffer.alloc(0),
        (err) => resolve(err),
      ),
    );
  const svc = await call("/containerd.services.nope.v1.Nope/Get");
  t.equal(svc?.code, 12);
  t.equal(svc?.details, "unknown service containerd.services.nope.v1.Nope");
  const m = await call("/containerd.services.version.v1.Version/Nope");
  t.equal(m?.code, 12);
  t.equal(m?.details, "unknown method Nope for service containerd.services.version.v1.Version");
});
