import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { packAny, runcoptions } from "@tsrunc/protocol/shim";
import { Code } from "@tsrunc/ttrpc";
import t from "tap";
import {
  CRI_RUNTIME_OPTIONS_TYPE,
  decodeCriRuntimeOptions,
  runcOptionsFromAny,
  runcOptionsFromToml,
} from "./runtime-options.js";

// runtimeoptions.v1.Options as containerd's CRI plugin encodes it: 1 type_url, 2 config_path,
// 3 config_body, each a length-delimited field.
function criOptions(fields: { typeUrl?: string; configPath?: string; configBody?: string }): Uint8Array {
  const parts: number[] = [];
  const put = (field: number, s: string | undefined) => {
    if (!s) return;
    const b = Buffer.from(s);
    parts.push((field << 3) | 2);
    let n = b.length;
    while (n >= 0x80) {
      parts.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    parts.push(n, ...b);
  };
  put(1, fields.typeUrl);
  put(2, fields.configPath);
  put(3, fields.configBody);
  return Uint8Array.from(parts);
}
const criAny = (f: Parameters<typeof criOptions>[0]) => ({
  typeUrl: CRI_RUNTIME_OPTIONS_TYPE,
  value: criOptions(f),
});

t.test("decode: the three fields, unknown ones skipped", async (t) => {
  const long = "/x".repeat(100);
  const b = criOptions({ typeUrl: "a.b", configPath: long, configBody: "Root = '/r'" });
  const d = decodeCriRuntimeOptions(Uint8Array.from([...b, 0x20, 0x05]));
  t.same([d.typeUrl, d.configPath, Buffer.from(d.configBody).toString()], ["a.b", long, "Root = '/r'"]);
  t.throws(() => decodeCriRuntimeOptions(Uint8Array.from([0x12, 0x05, 0x41])), {
    code: Code.InvalidArgument,
  });
});

t.test("toml: runc's keys, their kinds, comments; other keys ignored", async (t) => {
  const o = runcOptionsFromToml(
    [
      "# runc options for tsrunc",
      'BinaryName = "/usr/sbin/runc" # trailing comment',
      "Root = '/run/x#y'",
      "SystemdCgroup = true",
      "NoPivotRoot = false",
      "IoUid = 1_000",
      'TypeUrl = "ignored"',
      'ConfigPath = "/ignored"',
      "",
    ].join("\n"),
    "f",
  );
  t.same(
    [o.binaryName, o.root, o.systemdCgroup, o.noPivotRoot, o.ioUid],
    ["/usr/sbin/runc", "/run/x#y", true, false, 1000],
  );
  for (const bad of ['SystemdCgroup = "yes"', "Root = 1", "[table]", "BinaryName = [1]", "IoUid = -1"]) {
    t.throws(() => runcOptionsFromToml(bad, "f"), { code: Code.InvalidArgument }, bad);
  }
});

t.test("any: runc's Options, CRI's generic ones (file, body, empty), anything else refused", async (t) => {
  t.equal(runcOptionsFromAny(undefined), undefined);
  t.equal(runcOptionsFromAny({ typeUrl: "", value: new Uint8Array() }), undefined);
  const runc = runcOptionsFromAny(packAny(runcoptions.Options, { binaryName: "crun" }));
  t.equal(runc?.binaryName, "crun");
  t.equal(runcOptionsFromAny(criAny({})), undefined, "CRI's empty options: the defaults");
  t.equal(runcOptionsFromAny(criAny({ configBody: "Root = '/b'" }))?.root, "/b", "config_body (1.7+)");
  const dir = mkdtempSync(join(tmpdir(), "rtopts-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "runc.toml");
  writeFileSync(file, "SystemdCgroup = true\nRoot = '/f'\n");
  const fromFile = runcOptionsFromAny(criAny({ configPath: file, configBody: "Root = '/b'" }));
  t.same([fromFile?.systemdCgroup, fromFile?.root], [true, "/f"], "config_path wins");
  t.throws(() => runcOptionsFromAny(criAny({ configPath: "rel.toml" })), { code: Code.InvalidArgument });
  t.throws(() => runcOptionsFromAny(criAny({ configPath: join(dir, "none") })), {
    code: Code.InvalidArgument,
  });
  t.throws(() => runcOptionsFromAny({ typeUrl: "other.Options", value: new Uint8Array() }), {
    code: Code.InvalidArgument,
  });
});
