// The public surface: what other packages import must exist under these names, and a client and
// server built only from index.ts exports must talk to each other.

import { join } from "node:path";
import t from "tap";
import * as ttrpc from "./index.js";
import { tempDir } from "./test-support.js";

t.test("exports the public API", async (t) => {
  const names = [
    "Client",
    "Server",
    "Code",
    "TtrpcError",
    "errdefs",
    "isCode",
    "codeOf",
    "toTtrpcError",
    "listenUnix",
    "connectUnix",
    "socketPathOf",
    "FrameDecoder",
    "encodeFrame",
    "writeHeader",
    "Flags",
    "MessageType",
    "HEADER_LENGTH",
    "MAX_DATA_LENGTH",
    "encodeRequest",
    "decodeRequest",
    "encodeResponse",
    "decodeResponse",
    "DEFAULT_MAX_STREAMS_PER_CONNECTION",
    "MAX_SOCKET_PATH_BYTES",
    "memoryPair",
    "serveInMemory",
  ];
  for (const n of names) t.ok(n in ttrpc, n);
});

t.test("a service defined and served with index exports only", async (t) => {
  const text: ttrpc.MessageCodec<string> = {
    encode: (s) => Buffer.from(s),
    decode: (b) => Buffer.from(b).toString(),
  };
  const Greeter = {
    name: "example.Greeter",
    methods: {
      greet: { name: "Greet", kind: "unary", requestType: text, responseType: text },
    },
  } as const satisfies ttrpc.ServiceDescriptor;
  const server = new ttrpc.Server();
  server.register(Greeter, {
    greet: (name) => {
      if (name === "") throw ttrpc.errdefs.invalidArgument("name required");
      return `hello ${name}`;
    },
  });
  const path = join(tempDir(t), "g.sock");
  await server.listen(`unix://${path}`);
  t.teardown(() => server.close());
  const client = await ttrpc.Client.connect(`unix://${path}`, { timeoutMs: 1000 });
  t.teardown(() => client.close());
  const greeter = client.service(Greeter);
  t.equal(await greeter.greet("world"), "hello world");
  const err = await greeter.greet("").catch((e: unknown) => e);
  t.ok(ttrpc.isCode(err, ttrpc.Code.InvalidArgument));
});
