// Transport and authentication against real docker-registry instances on loopback, all serving
// the same storage: TLS with a CA made here, htpasswd basic auth, and token auth with a realm this
// test serves (the registry verifies the tokens against the realm's certificate).
import { join } from "node:path";
import { Code, isCode } from "@tsrunc/ttrpc/status";
import t, { type Test } from "tap";
import { ContentStore } from "../content-store.js";
import { pull } from "./pull.js";
import { RegistryClient } from "./registry-client.js";
import {
  buildFixture,
  makeCa,
  makeHtpasswd,
  seededStorage,
  startRegistry,
  startTokenRealm,
  tempDir,
} from "./test-registry.js";

const work = await tempDir(t);
const fixture = await buildFixture(work);
const rootdir = await seededStorage(t, fixture, "tsrunc/test");
const amd64 = fixture.multi.images[0]!;

async function freshStore(t: Test): Promise<ContentStore> {
  return ContentStore.open(await tempDir(t, "tsrunc-cs-"));
}

async function rejectsCode(t: Test, p: Promise<unknown>, code: Code, name: string): Promise<string> {
  try {
    await p;
    t.fail(`${name}: resolved`);
    return "";
  } catch (err) {
    t.ok(isCode(err, code), `${name}: ${Code[code]} (${String(err)})`);
    return String(err);
  }
}

t.test("TLS with a CA made by the test", async (t) => {
  const ca = await makeCa(await tempDir(t, "tsrunc-ca-"));
  const reg = await startRegistry(t, { rootdir, tls: { certificate: ca.serverCert, key: ca.serverKey } });
  const ref = `${reg.host}/tsrunc/test:multi`;

  const r = await pull(ref, { store: await freshStore(t), ca: [ca.caCert] });
  t.equal(r.manifestDescriptor.digest, amd64.manifest.digest, "pulled over HTTPS with --ca FILE");
  const { readFile } = await import("node:fs/promises");
  const r2 = await pull(ref, { store: await freshStore(t), ca: [await readFile(ca.caCert)] });
  t.equal(r2.manifestDescriptor.digest, amd64.manifest.digest, "with the CA given as PEM bytes");
  const r3 = await pull(ref, { store: await freshStore(t), skipVerify: true });
  t.equal(r3.target.digest, fixture.multi.index.digest, "skipVerify");

  const store = await freshStore(t);
  const msg = await rejectsCode(t, pull(ref, { store }), Code.Unavailable, "without the CA");
  t.match(msg, /certificate|self.signed|issuer/i, "says why");
  await rejectsCode(
    t,
    pull(ref, { store, plainHttp: true }),
    Code.Unknown,
    "plain HTTP to a TLS registry (400)",
  );
  await rejectsCode(
    t,
    pull(ref, { store, ca: [join(work, "missing.pem")] }),
    Code.InvalidArgument,
    "a CA file that is not there",
  );
  t.same(await store.list(), [], "nothing stored by the failures");
});

t.test("htpasswd basic auth", async (t) => {
  const dir = await tempDir(t, "tsrunc-htp-");
  const htpasswd = await makeHtpasswd(dir, "alice", "s3cret:with:colons");
  const reg = await startRegistry(t, { rootdir, htpasswd });
  const ref = `${reg.host}/tsrunc/test:multi`;
  const store = await freshStore(t);

  const noCreds = await rejectsCode(
    t,
    pull(ref, { store, plainHttp: true }),
    Code.Unauthenticated,
    "no credentials",
  );
  t.match(noCreds, /401/);
  await rejectsCode(
    t,
    pull(ref, { store, plainHttp: true, credentials: { username: "alice", password: "wrong" } }),
    Code.Unauthenticated,
    "a wrong password",
  );
  await rejectsCode(
    t,
    pull(ref, { store, plainHttp: true, credentials: { username: "bob", password: "s3cret:with:colons" } }),
    Code.Unauthenticated,
    "an unknown user",
  );
  t.same(await store.list(), [], "nothing stored");

  const client = new RegistryClient({
    plainHttp: true,
    credentials: (domain) =>
      domain === reg.host ? { username: "alice", password: "s3cret:with:colons" } : undefined,
  });
  t.teardown(() => client.close());
  const r = await pull(ref, { store, client });
  t.equal(r.manifestDescriptor.digest, amd64.manifest.digest, "pulled with the right credentials");
  // 1 challenged HEAD, then HEAD, index, manifest, config, 2 layers — each once.
  t.ok(client.stats.requests <= 7, `${client.stats.requests} requests: the challenge was answered once`);
});

t.test("bearer token auth with a realm served by the test", async (t) => {
  const dir = await tempDir(t, "tsrunc-tok-");
  const realm = await startTokenRealm(t, dir, "alice", "tok3n-pass");
  const reg = await startRegistry(t, { rootdir, token: realm });
  const ref = `${reg.host}/tsrunc/test:multi`;
  const store = await freshStore(t);

  const anon = await rejectsCode(
    t,
    pull(ref, { store, plainHttp: true }),
    Code.Unauthenticated,
    "anonymous (a token granting nothing)",
  );
  t.match(anon, /UNAUTHORIZED|authentication required/, "the registry's message");
  const wrong = await rejectsCode(
    t,
    pull(ref, { store, plainHttp: true, credentials: { username: "alice", password: "nope" } }),
    Code.Unauthenticated,
    "a wrong password at the token endpoint",
  );
  t.match(wrong, /wrong user or password/, "the token server's message");
  t.same(await store.list(), [], "nothing stored");

  const client = new RegistryClient({
    plainHttp: true,
    credentials: { username: "alice", password: "tok3n-pass" },
  });
  t.teardown(() => client.close());
  realm.requests.length = 0;
  const r = await pull(ref, { store, client, concurrency: 4 });
  t.equal(r.manifestDescriptor.digest, amd64.manifest.digest, "pulled with a token");
  t.equal(client.stats.tokenFetches, 1, "one token for the whole pull (parallel layers share it)");
  t.same(
    realm.requests,
    [{ scope: ["repository:tsrunc/test:pull"], user: "alice", granted: true }],
    "scoped to pull",
  );
  const r2 = await pull(`${reg.host}/tsrunc/test:single`, { store: await freshStore(t), client });
  t.equal(r2.target.digest, fixture.single.manifest.digest);
  t.equal(client.stats.tokenFetches, 1, "the cached token served a second pull of the same repository");
  await rejectsCode(
    t,
    pull(`${reg.host}/other/repo:x`, { store, client }),
    Code.NotFound,
    "another repository: a new scope, then 404",
  );
  t.equal(client.stats.tokenFetches, 2, "a token per scope");
});
