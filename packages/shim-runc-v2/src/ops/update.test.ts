import { OciLinuxResourcesType, packAny, tasktypes } from "@tsrunc/protocol/shim";
import { Code } from "@tsrunc/ttrpc";
import t from "tap";
import { resourcesJson } from "./update.js";

const enc = (s: string) => new TextEncoder().encode(s);

t.test("resources: the LinuxResources JSON text, unchanged (64-bit values keep every digit)", async (t) => {
  const text = '{"memory":{"limit":9223372036854775807},"cpu":{"shares":512}}';
  t.equal(resourcesJson({ typeUrl: OciLinuxResourcesType.typeUrl, value: enc(text) }), text);
  const packed = packAny(OciLinuxResourcesType, { pids: { limit: 10 } });
  t.same(JSON.parse(resourcesJson(packed)), { pids: { limit: 10 } });
});

t.test("resources: anything else is InvalidArgument", async (t) => {
  const url = OciLinuxResourcesType.typeUrl;
  for (const [what, any] of [
    ["missing", undefined],
    ["empty", { typeUrl: "", value: new Uint8Array() }],
    [
      "windows",
      { typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/WindowsResources", value: enc("{}") },
    ],
    ["a protobuf type", { typeUrl: tasktypes.Process.typeName, value: new Uint8Array([8, 1]) }],
    ["not JSON", { typeUrl: url, value: enc("{memory") }],
    ["an array", { typeUrl: url, value: enc("[]") }],
    ["null", { typeUrl: url, value: enc("null") }],
  ] as const) {
    t.throws(() => resourcesJson(any), { code: Code.InvalidArgument }, what);
  }
});

t.test("resources that are not UTF-8 are InvalidArgument too", async (t) => {
  t.throws(() => resourcesJson({ typeUrl: OciLinuxResourcesType.typeUrl, value: new Uint8Array([0xff]) }), {
    code: Code.InvalidArgument,
  });
});

// The update itself (which states, runc's errors): task-service.test.ts, with a fake runc.
