import { OciLinuxResourcesType, packAny, tasktypes } from "@tsrunc/protocol/shim";
import { Code } from "@tsrunc/ttrpc";
import t from "tap";
import { ProcessState } from "../process/process-state.js";
import { RuncError } from "../runc/index.js";
import type { PausableInit } from "./pause.js";
import { resourcesJson, updateInit } from "./update.js";

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

function fakeInit(
  status: "created" | "running" | "paused" | "stopped",
  update: (r: string) => Promise<void>,
) {
  const state = new ProcessState();
  if (status !== "created") state.transition("running");
  if (status === "paused") state.transition("paused");
  if (status === "stopped") state.setExited({ status: 0, exitedAt: new Date() });
  return {
    containerId: "c1",
    state,
    runc: { update: (_id: string, r: string) => update(r) },
  } as unknown as PausableInit;
}

t.test("update runs runc for created, running and paused containers, not for stopped ones", async (t) => {
  const seen: string[] = [];
  for (const s of ["created", "running", "paused"] as const) {
    await updateInit(
      fakeInit(s, async (r) => {
        seen.push(r);
      }),
      `{"s":"${s}"}`,
    );
  }
  t.same(seen, ['{"s":"created"}', '{"s":"running"}', '{"s":"paused"}']);
  await t.rejects(
    updateInit(
      fakeInit("stopped", async () => {
        t.fail("runc must not run");
      }),
      "{}",
    ),
    { code: Code.FailedPrecondition },
  );
});

t.test("runc's failure keeps its code and message", async (t) => {
  const init = fakeInit("running", async () => {
    throw new RuncError("container does not exist", { kind: "not-found", command: "update" });
  });
  await t.rejects(updateInit(init, "{}"), {
    code: Code.NotFound,
    message: /OCI runtime update failed: container does not exist/,
  });
  const exited = fakeInit("running", async () => {
    exited.state.setExited({ status: 137, exitedAt: new Date() });
    throw new RuncError("container not running", { kind: "not-running", command: "update" });
  });
  await t.rejects(updateInit(exited, "{}"), { code: Code.FailedPrecondition, message: /stopped/ });
});
