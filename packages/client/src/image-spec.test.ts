import t from "tap";
import { buildImageSpec, imageArgs } from "./image-spec.js";
import { type ImageConfigResult, parseImageConfig } from "./images.js";
import { normalizeImageName } from "./reference.js";
import { DEFAULT_PATH_ENV } from "./spec.js";

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

function image(config: Record<string, unknown>, user = { uid: 0, gid: 0, additionalGids: [] as number[] }) {
  const raw = enc({ architecture: "amd64", os: "linux", config, rootfs: { type: "layers", diff_ids: [] } });
  const r: ImageConfigResult = {
    config: parseImageConfig(raw),
    raw,
    chainId: "sha256:abc",
    manifest: undefined,
    ...user,
  };
  return r;
}

t.test("args: Entrypoint + Cmd, a command replaces Cmd only", async (t) => {
  const i = image({ Entrypoint: ["/bin/tini", "--"], Cmd: ["sh"] });
  t.same(imageArgs(i), ["/bin/tini", "--", "sh"]);
  t.same(imageArgs(i, ["echo", "hi"]), ["/bin/tini", "--", "echo", "hi"]);
  t.same(imageArgs(image({ Cmd: ["sh"] }), ["ls"]), ["ls"]);
  t.throws(() => buildImageSpec({ namespace: "n", id: "c", image: image({}), imageName: "x" }), {
    message: /image x has no Entrypoint or Cmd/,
  });
});

t.test("env, cwd and user from the image; flags win", async (t) => {
  const i = image(
    { Cmd: ["sh"], Env: ["PATH=/opt/bin", "A=image", "B=image"], WorkingDir: "/srv", User: "app" },
    { uid: 1000, gid: 1001, additionalGids: [20] },
  );
  const s = buildImageSpec({ namespace: "n", id: "c", image: i, imageName: "x", env: ["B=flag", "C=flag"] });
  t.same(s.process.env, ["PATH=/opt/bin", "A=image", "B=flag", "C=flag"]);
  t.equal(s.process.cwd, "/srv");
  t.same(s.process.user, { uid: 1000, gid: 1001, additionalGids: [20] });
  t.equal(s.root.path, "rootfs", "the bundle's rootfs, where the shim mounts the snapshot");
  const s2 = buildImageSpec({ namespace: "n", id: "c", image: i, imageName: "x", cwd: "/tmp", tty: true });
  t.equal(s2.process.cwd, "/tmp");
  t.equal(s2.process.terminal, true);
  const bare = buildImageSpec({ namespace: "n", id: "c", image: image({ Cmd: ["sh"] }), imageName: "x" });
  t.same(bare.process.env, [DEFAULT_PATH_ENV], "no Env in the image: the default PATH");
  t.equal(bare.process.cwd, "/");
  t.same(bare.process.user, { uid: 0, gid: 0 });
});

t.test("parseImageConfig keeps only well-typed fields", async (t) => {
  const c = parseImageConfig(
    enc({ config: { Cmd: null, Env: "x", Entrypoint: ["a", 1], User: 5, WorkingDir: "/w" } }),
  );
  t.same(c.config, { WorkingDir: "/w" });
  t.throws(() => parseImageConfig(new TextEncoder().encode("{")), { message: /not JSON/ });
  t.throws(() => parseImageConfig(enc([1])), { message: /not a JSON object/ });
});

t.test("normalizeImageName", async (t) => {
  const cases: [string, string][] = [
    ["busybox", "docker.io/library/busybox:latest"],
    ["busybox:1.36", "docker.io/library/busybox:1.36"],
    ["user/app", "docker.io/user/app:latest"],
    ["docker.io/busybox", "docker.io/library/busybox:latest"],
    ["127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b:latest"],
    ["localhost/a:t", "localhost/a:t"],
    ["quay.io/x/y@sha256:00", "quay.io/x/y@sha256:00"],
    ["host:5000/y:t@sha256:00", "host:5000/y:t@sha256:00"],
  ];
  for (const [i, o] of cases) t.equal(normalizeImageName(i), o, i);
});
