// `-info`: containerd (2.x) asks a shim what it is before using it. We read the runtime options
// from stdin, ask runc for its features (`runc features`; the binary named in the options, or
// runc), and print a serialized containerd.types.RuntimeInfo on stdout.
import { Any, OciFeaturesType, packAny, runcoptions, types, unpackAnyAs } from "@tsrunc/protocol/shim";
import { defaultRuncRoot } from "@tsrunc/shim-contract/roots";
import { Runc } from "../runc/index.js";
import { shimVersion } from "../version.js";

export const runtimeName = "io.containerd.tsrunc.v2";

export async function runtimeInfo(stdin: Uint8Array): Promise<Uint8Array> {
  let options: ReturnType<typeof Any.decode> | undefined;
  let binary = "runc";
  if (stdin.length > 0) {
    options = Any.decode(stdin);
    if (options.typeUrl === runcoptions.Options.typeName) {
      binary = unpackAnyAs(options, runcoptions.Options).binaryName || binary;
    }
  }
  // runc features reads no state; the root only has to be a valid absolute path.
  const features = await new Runc({ binary, root: defaultRuncRoot }).features();
  return types.RuntimeInfo.encode({
    name: runtimeName,
    version: { version: shimVersion, revision: "" },
    options,
    features: features ? packAny(OciFeaturesType, features as Record<string, unknown>) : undefined,
    annotations: {},
  });
}
