import { Any, OciFeaturesType, packAny, runcoptions, types, unpackAnyAs } from "@tsrunc/protocol/shim";
import t from "tap";
import { runtimeInfo, runtimeName } from "./info.js";

t.test("-info reports name, version, the options it was given and runc's features", async (t) => {
  const opts = packAny(runcoptions.Options, { binaryName: "runc", root: "/run/x" });
  // The same bytes containerd writes on the shim's stdin: a serialized google.protobuf.Any.
  const info = types.RuntimeInfo.decode(await runtimeInfo(Any.encode(opts)));
  t.equal(info.name, runtimeName);
  t.match(info.version?.version, /^\d+\.\d+\.\d+/);
  t.equal(info.options?.typeUrl, "containerd.runc.v1.Options");
  t.equal(info.features?.typeUrl, "types.containerd.io/opencontainers/runtime-spec/1/features/Features");
  const features = unpackAnyAs(info.features!, OciFeaturesType) as {
    ociVersionMax?: string;
    hooks?: string[];
  };
  t.type(features.ociVersionMax, "string", "runc's features document came through");
  t.ok(Array.isArray(features.hooks));
});

t.test("-info without options still answers", async (t) => {
  const info = types.RuntimeInfo.decode(await runtimeInfo(new Uint8Array()));
  t.equal(info.name, runtimeName);
  t.notOk(info.options);
});
