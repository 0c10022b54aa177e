import { Code, isCode } from "@tsrunc/ttrpc/status";
import t from "tap";
import { compatiblePlatforms, formatPlatform, parsePlatform, pickManifest } from "./platforms.js";
import {
  apiHost,
  familiarName,
  isLoopbackHost,
  manifestObject,
  normalizeReference,
  parseReference,
} from "./reference.js";
import { parseCredentials } from "./registry-client.js";
import { parseWwwAuthenticate } from "./www-authenticate.js";

const hex = "a".repeat(64);

t.test("normalization as containerd and nerdctl do it", async (t) => {
  const cases: Array<[string, string]> = [
    ["busybox", "docker.io/library/busybox:latest"],
    ["busybox:1.36", "docker.io/library/busybox:1.36"],
    ["library/busybox", "docker.io/library/busybox:latest"],
    ["user/app:v1", "docker.io/user/app:v1"],
    ["docker.io/busybox", "docker.io/library/busybox:latest"],
    ["index.docker.io/busybox", "docker.io/library/busybox:latest"],
    ["docker.io/library/busybox:latest", "docker.io/library/busybox:latest"],
    ["localhost/foo", "localhost/foo:latest"],
    ["localhost:5000/a/b:tag", "localhost:5000/a/b:tag"],
    ["127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:latest"],
    ["[::1]:5000/a", "[::1]:5000/a:latest"],
    [`quay.io/x/y@sha256:${hex}`, `quay.io/x/y@sha256:${hex}`],
    [`busybox@sha256:${hex}`, `docker.io/library/busybox@sha256:${hex}`],
    [`ghcr.io/o/r:t@sha256:${hex}`, `ghcr.io/o/r:t@sha256:${hex}`],
    ["Registry/app", "Registry/app:latest"], // an upper-case first component is a host
    ["a/b_c__d-e---f.g", "docker.io/a/b_c__d-e---f.g:latest"],
    ["localhost:5000", "docker.io/library/localhost:5000"],
  ];
  for (const [input, want] of cases) t.equal(normalizeReference(input), want, input);
  const r = parseReference("busybox");
  t.same(r, { domain: "docker.io", path: "library/busybox", tag: "latest" });
  t.equal(familiarName(r), "busybox:latest");
  t.equal(familiarName(parseReference("user/app:1")), "user/app:1");
  t.equal(familiarName(parseReference("localhost:5000/a:1")), "localhost:5000/a:1");
  t.equal(apiHost("docker.io"), "registry-1.docker.io");
  t.equal(apiHost("localhost:5000"), "localhost:5000");
  t.equal(manifestObject(parseReference(`a/b:t@sha256:${hex}`)), `sha256:${hex}`);
  t.equal(manifestObject(parseReference("a/b:t")), "t");
  t.ok(isLoopbackHost("localhost:5000"));
  t.ok(isLoopbackHost("127.0.0.1:1"));
  t.ok(isLoopbackHost("[::1]:5000"));
  t.notOk(isLoopbackHost("example.com:5000"));
});

t.test("invalid references are InvalidArgument with the text quoted", async (t) => {
  const bad = [
    "",
    " busybox",
    "busy box",
    "Busybox",
    "docker.io/Library/busybox",
    "busybox:",
    "busybox:-tag",
    `busybox:${"t".repeat(129)}`,
    "busybox@sha256:abc",
    `busybox@sha256:${"A".repeat(64)}`,
    `busybox@md5:${"a".repeat(32)}`,
    hex,
    "a//b",
    "a/b/",
    "/a",
    "a__-b",
    "-host:5000/a",
    `x.io/${"a".repeat(260)}`,
    ":tag",
    "a.b_c/g", // a dotted first component is a domain, and "_" has no place in one
  ];
  for (const input of bad) {
    try {
      parseReference(input);
      t.fail(`accepted ${JSON.stringify(input)}`);
    } catch (err) {
      t.ok(isCode(err, Code.InvalidArgument), `${JSON.stringify(input)}: ${String(err)}`);
    }
  }
  t.throws(() => parseReference("Busybox"), { code: Code.InvalidArgument, message: /must be lowercase/ });
});

t.test("platforms: parse, normalize, pick", async (t) => {
  t.equal(formatPlatform(parsePlatform("linux/amd64")), "linux/amd64");
  t.equal(formatPlatform(parsePlatform("linux/x86_64")), "linux/amd64");
  t.equal(formatPlatform(parsePlatform("linux/arm64/v8")), "linux/arm64");
  t.equal(formatPlatform(parsePlatform("linux/aarch64")), "linux/arm64");
  t.equal(formatPlatform(parsePlatform("linux/arm")), "linux/arm/v7");
  t.equal(formatPlatform(parsePlatform("arm64")), "linux/arm64");
  t.throws(() => parsePlatform("linux/amd64/v2/x"), { code: Code.InvalidArgument });
  t.throws(() => parsePlatform("linux//amd64"), { code: Code.InvalidArgument });
  t.same(compatiblePlatforms(parsePlatform("linux/arm/v7")).map(formatPlatform), [
    "linux/arm/v7",
    "linux/arm/v6",
    "linux/arm/v5",
  ]);
  const d = (architecture: string, variant?: string, os = "linux") => ({
    mediaType: "x",
    digest: `sha256:${hex}`,
    size: 1,
    platform: { os, architecture, ...(variant ? { variant } : {}) },
    annotations: { n: `${os}/${architecture}/${variant ?? ""}` },
  });
  const list = [
    d("amd64", undefined, "windows"),
    d("arm", "v6"),
    d("arm64", "v8"),
    d("amd64"),
    d("arm", "v7"),
  ];
  t.equal(pickManifest(list, parsePlatform("linux/amd64"))?.annotations?.n, "linux/amd64/");
  t.equal(pickManifest(list, parsePlatform("linux/arm64"))?.annotations?.n, "linux/arm64/v8");
  t.equal(pickManifest(list, parsePlatform("linux/arm/v7"))?.annotations?.n, "linux/arm/v7");
  t.equal(pickManifest(list, parsePlatform("linux/arm/v6"))?.annotations?.n, "linux/arm/v6");
  t.equal(pickManifest(list.slice(0, 2), parsePlatform("linux/arm/v7"))?.annotations?.n, "linux/arm/v6");
  t.equal(pickManifest(list, parsePlatform("linux/s390x")), undefined);
  t.equal(
    pickManifest(
      [{ ...d("amd64"), platform: { os: "unknown", architecture: "unknown" } }],
      parsePlatform("linux/amd64"),
    ),
    undefined,
  );
});

t.test("WWW-Authenticate and credentials", async (t) => {
  t.same(
    parseWwwAuthenticate(
      'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
    ),
    [
      {
        scheme: "bearer",
        params: {
          realm: "https://auth.docker.io/token",
          service: "registry.docker.io",
          scope: "repository:library/busybox:pull",
        },
      },
    ],
  );
  t.same(parseWwwAuthenticate('Basic realm="Registry Realm"'), [
    { scheme: "basic", params: { realm: "Registry Realm" } },
  ]);
  t.same(parseWwwAuthenticate('Basic realm="a\\"b", Bearer realm="r",error="insufficient_scope"'), [
    { scheme: "basic", params: { realm: 'a"b' } },
    { scheme: "bearer", params: { realm: "r", error: "insufficient_scope" } },
  ]);
  t.same(parseWwwAuthenticate(undefined), []);
  t.same(parseCredentials("u:p:q"), { username: "u", password: "p:q" });
  t.throws(() => parseCredentials("nopass"), { code: Code.InvalidArgument });
  t.throws(() => parseCredentials(":p"), { code: Code.InvalidArgument });
});
