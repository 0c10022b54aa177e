// Request bodies for message-level fuzzing of tsruncd's image services (Images, Snapshots,
// ImageTools, and containerd's Content and Diff), as lib/daemon-arbs.ts makes them for Containers/Tasks/Events: structured hostile
// requests (names and keys like `../x`, 10,000 characters, NUL bytes; labels at and over the
// limits; filters that do not parse or backtrack; descriptors naming blobs that are not there;
// snapshot chains through keys that exist, do not, or are the imported image's layer), then maybe
// mutated at the byte level, re-encoded with wrong wire types, replaced by protobuf soup or random
// bytes. Import (a client stream) gets small archives made here (an OCI layout with one layer,
// gzip'd or not, named or not; a docker-archive), mutated or replaced by random bytes, cut into
// chunks that may be undecodable themselves, and sent to the end or abandoned. Content.Write (a
// bidirectional stream) gets sequences of STAT/WRITE/COMMIT with right and wrong offsets, totals,
// digests (the campaign's own blobs, unknown ones, malformed ones) and labels, closed or
// abandoned; Diff.Apply gets the mounts of one of the campaign's snapshot keys (looked up by the
// runner when it sends: `applyTo`) or hostile mounts, with the campaign's layer blobs.
//
// Safety: every Pull goes through lib/pull-guard.ts (the dead registry 127.0.0.1:1, or a ref the
// daemon refuses before any network access). Sizes are bounded: an archive is at most ~70 KiB,
// random bodies at most 64 KiB, a campaign's imports a few MiB in all; the content the campaign
// made is removed through the API afterwards.
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { hostPlatform } from "@tsrunc/images/distribution";
import { makeTar } from "@tsrunc/images/distribution/test-registry";
import {
  ContentService,
  DiffService,
  ImagesService,
  ImageToolsService,
  SnapshotsService,
} from "@tsrunc/protocol/daemon";
import type { AnyMethod, ServiceDescriptor } from "@tsrunc/ttrpc";
import fc from "fast-check";
import {
  byteMutate,
  type DaemonInput,
  hostileBodyArb,
  hostileFilters,
  hostileIds,
  labelsArb,
  type NsSpec,
} from "./daemon-arbs.js";
import { imageMethods } from "./daemon-profile.js";
import { DEAD_REGISTRY, sanitizePull } from "./pull-guard.js";

export interface ImageInput extends DaemonInput {
  /** Import: the messages after the request (each an ImportChunk, or bytes that are not one). */
  chunks?: Uint8Array[];
  /** Import: close the sending side after the chunks (else the stream is abandoned after streamMs). */
  close?: boolean;
  /**
   * Diff.Apply into the snapshot with this key: the runner asks Snapshots.Mounts for its mounts
   * and sends them with `applyDiff` (a key that does not exist or is committed: its answer is the
   * input's, and the Apply goes with hostile mounts instead).
   */
  applyTo?: string;
  applyDiff?: { mediaType: string; digest: string; size: number };
}

/** containerd's Content and Diff, fuzzed in the image campaign (not in the frame-level one). */
export const CONTENT_SERVICES: readonly ServiceDescriptor[] = [ContentService, DiffService];
export const contentMethods: ReadonlyMap<string, ReadonlyMap<string, AnyMethod>> = new Map(
  CONTENT_SERVICES.map((sv) => [
    sv.name,
    new Map(Object.values(sv.methods as Record<string, AnyMethod>).map((m) => [m.name, m])),
  ]),
);

const I = ImagesService.name;
const S = SnapshotsService.name;
const T = ImageToolsService.name;
const C = ContentService.name;
const D = DiffService.name;

// ---------------------------------------------------------------------------------------------
// small archives, made once

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const host = hostPlatform();
const platform = {
  os: host.os,
  architecture: host.architecture,
  ...(host.variant ? { variant: host.variant } : {}),
};

const LAYER = makeTar([
  { name: "bin", dir: true },
  { name: "etc", dir: true },
  {
    name: "etc/passwd",
    data: Buffer.from("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"),
  },
  { name: "etc/group", data: Buffer.from("root:x:0:\napp:x:1000:\nextra:x:2000:app\n") },
  { name: "hello.txt", data: Buffer.alloc(20000, 0x61) },
]);
/** The layer's diff id: the image's only chain id (a snapshot key the campaign aims at). */
export const LAYER_CHAIN = `sha256:${sha(LAYER)}`;
const LAYER_GZ = gzipSync(LAYER);

interface Blob {
  hex: string;
  data: Buffer;
}
const blob = (data: Buffer): Blob => ({ hex: sha(data), data });

function ociArchive(name: string | undefined, gzLayer: boolean): Buffer {
  const layer = blob(gzLayer ? LAYER_GZ : LAYER);
  const config = blob(
    json({
      ...platform,
      config: { User: "app", Cmd: ["/bin/sh"] },
      rootfs: { type: "layers", diff_ids: [LAYER_CHAIN] },
    }),
  );
  const manifest = blob(
    json({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: `sha256:${config.hex}`,
        size: config.data.length,
      },
      layers: [
        {
          mediaType: `application/vnd.oci.image.layer.v1.tar${gzLayer ? "+gzip" : ""}`,
          digest: `sha256:${layer.hex}`,
          size: layer.data.length,
        },
      ],
    }),
  );
  const index = json({
    schemaVersion: 2,
    manifests: [
      {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: `sha256:${manifest.hex}`,
        size: manifest.data.length,
        platform,
        annotations: name
          ? { "io.containerd.image.name": name, "org.opencontainers.image.ref.name": "1" }
          : { "org.opencontainers.image.ref.name": "latest" },
      },
    ],
  });
  return makeTar([
    { name: "oci-layout", data: json({ imageLayoutVersion: "1.0.0" }) },
    { name: "blobs", dir: true },
    { name: "blobs/sha256", dir: true },
    ...[layer, config, manifest].map((b) => ({ name: `blobs/sha256/${b.hex}`, data: b.data })),
    { name: "index.json", data: index },
  ]);
}

function dockerArchive(tag: string): Buffer {
  const config = json({
    ...platform,
    config: { User: "1000:2000" },
    rootfs: { type: "layers", diff_ids: [LAYER_CHAIN] },
  });
  const cfgName = `${sha(config)}.json`;
  return makeTar([
    { name: cfgName, data: config },
    { name: "l1", dir: true },
    { name: "l1/layer.tar", data: LAYER },
    { name: "manifest.json", data: json([{ Config: cfgName, RepoTags: [tag], Layers: ["l1/layer.tar"] }]) },
  ]);
}

/** Names the archives give their images (the campaign's Config, Export and Delete aim at them). */
export const FUZZ_IMAGES = ["fz.local/img:1", "fz.local/gz:1", "fz.local/dock:2", "fz/base:latest"];
const PLAIN = [
  { what: "oci", bytes: ociArchive("fz.local/img:1", false) },
  { what: "oci, gzip'd layer", bytes: ociArchive("fz.local/gz:1", true) },
  { what: "oci, unnamed", bytes: ociArchive(undefined, false) },
  { what: "docker", bytes: dockerArchive("fz.local/dock:2") },
];
export const ARCHIVES: readonly { what: string; bytes: Buffer }[] = [
  ...PLAIN,
  ...PLAIN.slice(0, 2).map((a) => ({ what: `${a.what}, gzip'd archive`, bytes: gzipSync(a.bytes) })),
];

/**
 * Namespaces: the test's, none ("default"), or raw values whose first (the one the daemon reads)
 * is "default", "fzns" or invalid, so that everything the campaign makes is in a namespace its
 * cleanup visits (a random valid one would hide content from it).
 */
export const IMAGE_NAMESPACES = ["default", "fzns"];
const imageNsArb: fc.Arbitrary<NsSpec> = fc.oneof(
  { weight: 16, arbitrary: fc.constant<NsSpec>({ k: "test" }) },
  { weight: 1, arbitrary: fc.constant<NsSpec>({ k: "none" }) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.oneof(
          fc.constantFrom(...IMAGE_NAMESPACES, "../x", "", "a".repeat(77), "ns\0", "é", ".s", "-x", "a/b"),
          fc.string({ maxLength: 12 }).map((s) => `${s}/`),
        ),
        fc.array(fc.string({ maxLength: 12 }), { maxLength: 2 }),
      )
      .map(([first, rest]): NsSpec => ({ k: "raw", values: [first, ...rest] })),
  },
);

// ---------------------------------------------------------------------------------------------
// structured requests

const MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const snapshotLabels: fc.Arbitrary<Record<string, string>> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({}) },
  {
    weight: 3,
    arbitrary: fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 }), { maxKeys: 4 }),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom<Record<string, string>>(
      { "containerd.io/gc.root": "x" },
      { "containerd.io/snapshot.ref": "fz" },
      { x: "a".repeat(4095) },
      { x: "a".repeat(70000) },
      Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`l${i}`, "v".repeat(4000)])),
      Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`l${i}`, "v".repeat(4000)])),
      { __proto__: "p", constructor: "c" } as Record<string, string>,
    ),
  },
);

function fields() {
  const name = fc.oneof(
    { weight: 10, arbitrary: fc.constantFrom(...FUZZ_IMAGES) },
    {
      weight: 3,
      arbitrary: fc.constantFrom(
        ...hostileIds,
        "docker.io/library/fz:latest",
        "UPPER/x:1",
        "a:b:c",
        "x@sha256:zz",
        `fz@sha256:${"c".repeat(64)}`,
        "a".repeat(4097),
      ),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 20, unit: "binary" }) },
  );
  const digest = fc.oneof(
    fc.constantFrom(
      `sha256:${"c".repeat(64)}`,
      LAYER_CHAIN,
      "",
      "sha256:",
      "sha256:../../../etc/passwd",
      `sha512:${"d".repeat(128)}`,
      "md5:abc",
      `sha256:${"C".repeat(64)}`,
    ),
    fc.string({ maxLength: 80 }),
  );
  const target = fc.record(
    {
      mediaType: fc.oneof(
        fc.constantFrom(MANIFEST, "application/vnd.oci.image.index.v1+json", "", "x/y"),
        fc.string({ maxLength: 30 }),
      ),
      digest,
      size: fc.oneof(fc.nat(100000), fc.constantFrom(-1, 0, 2 ** 53 - 1)),
      annotations: fc.oneof(
        fc.constant({}),
        fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
      ),
    },
    { requiredKeys: [] },
  );
  const image = fc.record({ name, labels: labelsArb, target }, { requiredKeys: ["name"] });
  const filters = fc.array(
    fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom(...hostileFilters) },
      {
        weight: 2,
        arbitrary: fc.constantFrom(
          "name==fz.local/img:1",
          "name~=^fz",
          "name~=^(f+)+$",
          `target.digest==${LAYER_CHAIN}`,
          "target.mediatype~=json",
          "labels.x",
          "kind==committed",
          "kind==active",
          "parent==",
          `parent==${LAYER_CHAIN}`,
          "name~=(k|k)*z",
        ),
      },
      { weight: 1, arbitrary: fc.string() },
    ),
    { maxLength: 3 },
  );
  const snapshotter = fc.oneof(
    { weight: 8, arbitrary: fc.constant("overlayfs") },
    { weight: 2, arbitrary: fc.constant("") },
    { weight: 1, arbitrary: fc.constantFrom("btrfs", "native", "OVERLAYFS", "../x", "overlayfs\0") },
    { weight: 1, arbitrary: fc.string({ maxLength: 10 }) },
  );
  const key = fc.oneof(
    { weight: 10, arbitrary: fc.constantFrom("k1", "k2", "k3", "k4", "c1", "c2") },
    { weight: 4, arbitrary: fc.constant(LAYER_CHAIN) },
    { weight: 3, arbitrary: fc.constantFrom(...hostileIds, "a".repeat(4097), "tsrunc-view-x") },
    { weight: 1, arbitrary: fc.string({ maxLength: 20, unit: "binary" }) },
  );
  const parent = fc.oneof({ weight: 3, arbitrary: fc.constant("") }, { weight: 5, arbitrary: key });
  const platform = fc.oneof(
    {
      weight: 3,
      arbitrary: fc.constantFrom("", "", `${host.os}/${host.architecture}`, "linux/arm64", "windows/amd64"),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom("linux", "amd64", "a/b/c/d", "linux/amd64/v99", "/", "//", "linux/", "é/é"),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 16 }) },
  );
  const mask = fc.option(
    fc.record({
      paths: fc.array(
        fc.oneof(
          fc.constantFrom("labels", "labels.x", "labels.__proto__", "target", "name", "annotations"),
          fc.constantFrom("createdat", "", "labels.", "kind", "parent", "target.digest"),
          fc.string({ maxLength: 12 }),
        ),
        { maxLength: 4 },
      ),
    }),
    { nil: undefined },
  );
  return { name, image, filters, snapshotter, key, parent, platform, mask };
}

/** Refs for Pull (the pull guard points every one that parses at the dead registry). */
const refArb = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      `${DEAD_REGISTRY}/fz/img:1`,
      `${DEAD_REGISTRY}/fz/img@sha256:${"c".repeat(64)}`,
      `${DEAD_REGISTRY}/fz/img:1@sha256:${"c".repeat(64)}`,
      `${DEAD_REGISTRY}/${"a/".repeat(100)}x`,
      `${DEAD_REGISTRY}/fz/${"x".repeat(300)}`,
    ),
  },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "",
      " ",
      "busybox",
      "docker.io/Library/x",
      "UPPER/x",
      "../x",
      "a".repeat(64 * 1024),
      "c".repeat(64),
      "x@sha256:zz",
      "x:",
      ":x",
      "[::1]:5000/x",
      "127.0.0.1:99999999999999999999/x",
      "localhost/x:1",
      "a\0b",
      "é",
      "x:tag@",
      `${DEAD_REGISTRY}/x:${"t".repeat(200)}`,
    ),
  },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }) },
);

const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const user = fc.oneof(
  fc.constantFrom("", "root", "0", "0:0", "app", "1000:1000", "app:extra", "nobody:nogroup", ":", "a:b:c"),
  fc.constantFrom("-1", "4294967296", "99999999999999999999", "x".repeat(5000), "app:", ":app", "\0"),
  fc.string({ maxLength: 12 }),
);

function requestArb(service: string, method: string): fc.Arbitrary<Record<string, unknown>> {
  const f = fields();
  if (service === I) {
    switch (method) {
      case "Create":
        return fc.record({ image: f.image });
      case "Update":
        return fc.record({ image: f.image, updateMask: f.mask });
      case "List":
        return fc.record({ filters: f.filters });
      case "Delete":
        return fc.record({ name: f.name, sync: fc.boolean() });
      default:
        return fc.record({ name: f.name });
    }
  }
  if (service === S) {
    switch (method) {
      case "Prepare":
      case "View":
        return fc.record({
          snapshotter: f.snapshotter,
          key: f.key,
          parent: f.parent,
          labels: snapshotLabels,
        });
      case "Commit":
        return fc.record({ snapshotter: f.snapshotter, name: f.key, key: f.key, labels: snapshotLabels });
      case "Update":
        return fc.record({
          snapshotter: f.snapshotter,
          info: fc.record(
            {
              name: f.key,
              parent: f.parent,
              kind: fc.nat(5),
              labels: snapshotLabels,
            },
            { requiredKeys: ["name"] },
          ),
          updateMask: f.mask,
        });
      case "List":
        return fc.record({ snapshotter: f.snapshotter, filters: f.filters });
      case "Cleanup":
        return fc.record({ snapshotter: f.snapshotter });
      default:
        return fc.record({ snapshotter: f.snapshotter, key: f.key });
    }
  }
  switch (method) {
    case "Pull":
      return fc.record(
        {
          ref: refArb,
          platform: f.platform,
          plainHttp: fc.boolean(),
          caPem: fc.oneof(
            { weight: 6, arbitrary: fc.constant(new Uint8Array(0)) },
            {
              weight: 1,
              arbitrary: fc.constantFrom(
                Buffer.from(PEM),
                Buffer.from(PEM.repeat(3)),
                Buffer.from("-----BEGIN CERTIFICATE-----"),
                Buffer.alloc(4096, 0x41),
              ),
            },
            { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
          ),
          username: fc.oneof(fc.constant(""), fc.string({ maxLength: 10 })),
          password: fc.oneof(fc.constant(""), fc.string({ maxLength: 10 })),
          unpack: fc.boolean(),
          snapshotter: f.snapshotter,
          maxConcurrentDownloads: fc.oneof(fc.nat(20), fc.constantFrom(0xffffffff, 0x7fffffff)),
        },
        { requiredKeys: ["ref"] },
      );
    case "Export":
      return fc.record({
        names: fc.oneof(
          fc.array(f.name, { maxLength: 3 }),
          fc.constant(Array.from({ length: 300 }, () => "fz.local/img:1")),
        ),
        platform: f.platform,
      });
    case "Config":
      return fc.record({ name: f.name, platform: f.platform, user });
    case "Prune":
      return fc.record({ all: fc.boolean() });
    default:
      return fc.constant({});
  }
}

// ---------------------------------------------------------------------------------------------
// Import: archives as chunks

const chunkCodec = ImageToolsService.methods.import.requestType;

const importOptions = fc.record({
  unpack: fc.boolean(),
  snapshotter: fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom("", "overlayfs") },
    { weight: 1, arbitrary: fc.constantFrom("btrfs", "../x") },
  ),
  baseName: fc.oneof(
    { weight: 3, arbitrary: fc.constant("") },
    {
      weight: 2,
      arbitrary: fc.constantFrom("fz/base", "FZ/Base", "../x", "a".repeat(300), "fz/base:tag", ""),
    },
    { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  ),
  platform: fc.oneof(
    { weight: 4, arbitrary: fc.constant("") },
    { weight: 1, arbitrary: fc.constantFrom("linux/arm64", "bad", "linux/amd64/v99", "a/b/c/d") },
  ),
});

const archiveBytes: fc.Arbitrary<{ bytes: Uint8Array; how: string }> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.constantFrom(...ARCHIVES).map((a) => ({ bytes: a.bytes, how: `archive ${a.what}` })),
  },
  {
    weight: 6,
    arbitrary: fc
      .tuple(
        fc.constantFrom(...ARCHIVES),
        fc.array(fc.record({ at: fc.nat(), kind: fc.nat(), v: fc.nat(255) }), { minLength: 1, maxLength: 4 }),
      )
      .map(([a, ops]) => ({ bytes: byteMutate(a.bytes, ops), how: `mutated archive ${a.what}` })),
  },
  {
    weight: 2,
    arbitrary: fc
      .oneof(
        fc.uint8Array({ maxLength: 2048 }),
        fc.nat(64 * 1024).map((n) => Buffer.alloc(n, n & 0xff)),
        fc.constantFrom(gzipSync(Buffer.alloc(0)), Buffer.from([0x1f, 0x8b]), Buffer.alloc(1024)),
      )
      .map((bytes) => ({ bytes, how: "random archive" })),
  },
);

const importArb: fc.Arbitrary<ImageInput> = fc
  .record({
    archive: archiveBytes,
    cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 5 }),
    options: fc.option(importOptions, { freq: 4, nil: undefined }),
    /** Options on a later chunk too, chunks replaced by bytes that are no ImportChunk, none at all. */
    twist: fc.constantFrom("none", "none", "none", "options again", "bad chunk", "wire type", "no chunks"),
    twistAt: fc.nat(),
    junk: fc.uint8Array({ minLength: 1, maxLength: 24 }),
    close: fc.oneof(
      { weight: 5, arbitrary: fc.constant(true) },
      { weight: 1, arbitrary: fc.constant(false) },
    ),
    ns: imageNsArb,
    streamMs: fc.nat(200),
  })
  .map(({ archive, cuts, options, twist, twistAt, junk, close, ns, streamMs }) => {
    const b = archive.bytes;
    const points = [...new Set(cuts.map((c) => Math.floor(c * b.length)))].sort((x, y) => x - y);
    const parts: Uint8Array[] = [];
    let at = 0;
    for (const p of points) {
      if (p > at) parts.push(b.subarray(at, p));
      at = Math.max(at, p);
    }
    parts.push(b.subarray(at));
    let chunks = parts.map((data, i) =>
      chunkCodec.encode({ data, ...(i === 0 && options ? { options } : {}) }),
    );
    const i = twistAt % chunks.length;
    if (twist === "options again")
      chunks[i] = chunkCodec.encode({ data: parts[i]!, options: options ?? { unpack: true } });
    if (twist === "bad chunk") chunks[i] = junk;
    if (twist === "wire type") {
      const c = Buffer.from(chunks[i]!);
      if (c.length) c[0] = (c[0]! & ~7) | (junk[0]! % 8);
      chunks[i] = c;
    }
    if (twist === "no chunks") chunks = [];
    const [first, ...rest] = chunks;
    return {
      service: T,
      method: "Import",
      payload: first ?? new Uint8Array(0),
      chunks: first ? rest : [],
      close,
      ns,
      streamMs,
      how: `${archive.how}${twist === "none" ? "" : `, ${twist}`}${close ? "" : ", abandoned"}`,
    };
  });

// ---------------------------------------------------------------------------------------------

const wire: { service: string; method: string }[] = [];
for (const [service, methods] of imageMethods)
  for (const method of methods.keys()) if (method !== "Import") wire.push({ service, method });
// What makes state, more often: records, snapshots, imports.
for (let i = 0; i < 2; i++)
  wire.push(
    { service: I, method: "Create" },
    { service: S, method: "Prepare" },
    { service: S, method: "Commit" },
    { service: T, method: "Config" },
  );

// ---------------------------------------------------------------------------------------------
// Content and Diff

/** Blobs the campaign's archives store (so Info, Read, Write's AlreadyExists and Apply find them). */
const LAYER_DIGESTS = [LAYER_CHAIN, `sha256:${sha(LAYER_GZ)}`];
const WRITE_DATA = [Buffer.from("fz content"), Buffer.alloc(3000, 0x62), LAYER.subarray(0, 4096)];

const contentDigest = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...LAYER_DIGESTS, ...WRITE_DATA.map((b) => `sha256:${sha(b)}`)) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      `sha256:${"c".repeat(64)}`,
      "",
      "sha256:",
      "sha256:../../etc/passwd",
      `sha512:${"d".repeat(128)}`,
      `sha256:${"C".repeat(64)}`,
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 80 }) },
);
const contentRef = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("fz-ref-1", "fz-ref-2", "layer-sha256:x", "tar-blobs/sha256/x") },
  { weight: 2, arbitrary: fc.constantFrom(...hostileIds, "a".repeat(4097), "a/../../b", "") },
  { weight: 1, arbitrary: fc.string({ maxLength: 20, unit: "binary" }) },
);
const contentLabels: fc.Arbitrary<Record<string, string>> = fc.oneof(
  { weight: 4, arbitrary: fc.constant({}) },
  { weight: 2, arbitrary: labelsArb },
  {
    weight: 1,
    arbitrary: fc.constantFrom<Record<string, string>>(
      { "containerd.io/gc.ref.content.l.0": LAYER_CHAIN },
      { "containerd.io/uncompressed": LAYER_CHAIN },
      { x: "a".repeat(5000) },
      { "": "empty key" },
      { __proto__: "p", constructor: "c" } as Record<string, string>,
    ),
  },
);
const offsetArb = fc.oneof(fc.nat(5000), fc.constantFrom(-1, 2 ** 53 - 1, 4096));
const totalArb = fc.oneof(
  fc.constantFrom(0, ...WRITE_DATA.map((b) => b.length)),
  fc.nat(10000),
  fc.constantFrom(-5, 2 ** 53 - 1),
);

const writeReq = ContentService.methods.write.requestType;
const writeMessage = fc
  .record({
    action: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(0, 1, 2) }, { weight: 1, arbitrary: fc.nat(9) }),
    ref: fc.oneof({ weight: 3, arbitrary: fc.constant("") }, { weight: 1, arbitrary: contentRef }),
    total: totalArb,
    expected: fc.oneof({ weight: 3, arbitrary: fc.constant("") }, { weight: 1, arbitrary: contentDigest }),
    offset: offsetArb,
    data: fc.oneof(fc.constantFrom(...WRITE_DATA, new Uint8Array(0)), fc.uint8Array({ maxLength: 2048 })),
    labels: contentLabels,
  })
  .map((m) => writeReq.encode(m));

/** A Write stream: a well-formed ingest of one of WRITE_DATA (maybe twisted), or messages at random. */
const writeArb: fc.Arbitrary<ImageInput> = fc
  .record({
    data: fc.constantFrom(...WRITE_DATA),
    ref: contentRef,
    knownDigest: fc.boolean(),
    pieces: fc.integer({ min: 1, max: 4 }),
    twist: fc.constantFrom("none", "none", "wrong digest", "short", "gap", "restart", "no commit", "random"),
    random: fc.array(writeMessage, { maxLength: 5 }),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 24 }),
    close: fc.oneof(
      { weight: 5, arbitrary: fc.constant(true) },
      { weight: 1, arbitrary: fc.constant(false) },
    ),
    ns: imageNsArb,
    streamMs: fc.nat(200),
  })
  .map(({ data, ref, knownDigest, pieces, twist, random, bytes, close, ns, streamMs }) => {
    const digest = twist === "wrong digest" ? `sha256:${"c".repeat(64)}` : `sha256:${sha(data)}`;
    const expected = knownDigest || twist === "wrong digest" ? digest : "";
    const total = twist === "short" ? data.length + 1 : data.length;
    const msgs: Uint8Array[] = [writeReq.encode({ action: 0, ref, total, expected })];
    const step = Math.ceil(data.length / pieces);
    for (let at = 0; at < data.length; at += step) {
      const last = at + step >= data.length;
      const offset = twist === "gap" && at > 0 ? at + 7 : twist === "restart" && last ? 0 : at;
      msgs.push(
        writeReq.encode({
          action: last && twist !== "no commit" ? 2 : 1,
          offset,
          data: data.subarray(at, at + step),
          ...(last ? { total, expected } : {}),
        }),
      );
    }
    const chunks = twist === "random" ? [...random, bytes] : msgs;
    const [first, ...rest] = chunks;
    return {
      service: C,
      method: "Write",
      payload: first ?? new Uint8Array(0),
      chunks: rest,
      close,
      ns,
      streamMs,
      how: `write ${twist}${close ? "" : ", abandoned"}`,
    };
  });

const mountArb = fc.record({
  type: fc.constantFrom("bind", "overlay", "tmpfs", "", "proc"),
  source: fc.constantFrom("/", "/etc", "/proc", "../x", "", "/dev/sda"),
  target: fc.constantFrom("", "/x"),
  options: fc.array(fc.constantFrom("rbind", "ro", "rw", "lowerdir=/", "upperdir=/tmp", "workdir=/tmp"), {
    maxLength: 3,
  }),
});
const layerDescArb = fc.record({
  mediaType: fc.oneof(
    fc.constantFrom(
      "application/vnd.oci.image.layer.v1.tar",
      "application/vnd.oci.image.layer.v1.tar+gzip",
      "application/vnd.docker.image.rootfs.diff.tar.gzip",
      "application/vnd.oci.image.layer.v1.tar+zstd",
      "",
      "application/vnd.oci.image.layer.v1.tar+encrypted",
    ),
    fc.string({ maxLength: 20 }),
  ),
  digest: contentDigest,
  size: fc.oneof(fc.constantFrom(0, LAYER.length, LAYER_GZ.length), fc.nat(100000)),
});

function contentRequestArb(service: string, method: string): fc.Arbitrary<Record<string, unknown>> {
  const filters = fc.array(
    fc.oneof(
      fc.constantFrom(...hostileFilters),
      fc.constantFrom(`digest==${LAYER_CHAIN}`, "labels.x", "size==20000", "ref~=^fz", "expected~=sha256"),
      fc.string(),
    ),
    { maxLength: 3 },
  );
  if (service === D) {
    if (method === "Diff")
      return fc.record({
        left: fc.array(mountArb, { maxLength: 2 }),
        right: fc.array(mountArb, { maxLength: 2 }),
        mediaType: fc.constantFrom("", "application/vnd.oci.image.layer.v1.tar"),
        ref: contentRef,
        labels: contentLabels,
      });
    return fc.record({ diff: layerDescArb, mounts: fc.array(mountArb, { maxLength: 3 }) });
  }
  switch (method) {
    case "Info":
    case "Delete":
      return fc.record({ digest: contentDigest });
    case "Update":
      return fc.record({
        info: fc.record({ digest: contentDigest, size: fc.nat(100), labels: contentLabels }),
        updateMask: fc.option(
          fc.record({
            paths: fc.array(
              fc.oneof(
                fc.constantFrom("labels", "labels.x", "labels.__proto__", "size", "digest", "labels.", ""),
                fc.string({ maxLength: 12 }),
              ),
              { maxLength: 3 },
            ),
          }),
          { nil: undefined },
        ),
      });
    case "List":
    case "ListStatuses":
      return fc.record({ filters });
    case "Read":
      return fc.record({
        digest: contentDigest,
        offset: offsetArb,
        size: fc.oneof(fc.nat(30000), fc.constantFrom(-1, 2 ** 53 - 1)),
      });
    default:
      return fc.record({ ref: contentRef });
  }
}

const contentWire: { service: string; method: string }[] = [];
for (const [service, methods] of contentMethods)
  for (const method of methods.keys()) if (method !== "Write") contentWire.push({ service, method });

const contentArb: fc.Arbitrary<ImageInput> = fc.oneof(
  { weight: 3, arbitrary: writeArb },
  {
    weight: 6,
    arbitrary: fc.constantFrom(...contentWire).chain(({ service, method }) => {
      const codec = contentMethods.get(service)!.get(method)!.requestType as AnyMethod["requestType"];
      const structured = contentRequestArb(service, method).map((r) => ({
        bytes: codec.encode(r),
        how: "structured",
      }));
      return fc.record({ body: hostileBodyArb(structured), ns: imageNsArb, streamMs: fc.nat(200) }).map(
        ({ body, ns, streamMs }): ImageInput => ({
          service,
          method,
          payload: body.bytes,
          ns,
          streamMs,
          how: body.how,
        }),
      );
    }),
  },
  {
    // Apply into one of the campaign's snapshot keys, by the mounts the daemon gave it.
    weight: 2,
    arbitrary: fc
      .record({
        key: fc.constantFrom("k1", "k2", "k3", "k4", "c1", "c2", LAYER_CHAIN),
        diff: fc.oneof(
          {
            weight: 3,
            arbitrary: fc.constantFrom(
              {
                mediaType: "application/vnd.oci.image.layer.v1.tar",
                digest: LAYER_CHAIN,
                size: LAYER.length,
              },
              {
                mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
                digest: `sha256:${sha(LAYER_GZ)}`,
                size: LAYER_GZ.length,
              },
              // A blob that is no layer (what a Write may have stored), or the wrong compression.
              {
                mediaType: "application/vnd.oci.image.layer.v1.tar",
                digest: `sha256:${sha(WRITE_DATA[1]!)}`,
                size: 0,
              },
              { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: LAYER_CHAIN, size: 0 },
            ),
          },
          { weight: 1, arbitrary: layerDescArb },
        ),
        ns: imageNsArb,
      })
      .map(
        ({ key, diff, ns }): ImageInput => ({
          service: D,
          method: "Apply",
          payload: new Uint8Array(0),
          applyTo: key,
          applyDiff: diff,
          ns,
          streamMs: 0,
          how: `apply ${diff.mediaType} into ${key}`,
        }),
      ),
  },
);

export function imageInputArb(): fc.Arbitrary<ImageInput> {
  const unaryish = fc.constantFrom(...wire).chain(({ service, method }) => {
    const codec = imageMethods.get(service)!.get(method)!.requestType as AnyMethod["requestType"];
    const structured = requestArb(service, method).map((r) => ({
      bytes: codec.encode(r),
      how: "structured",
    }));
    return fc
      .record({
        body: hostileBodyArb(structured),
        ns: imageNsArb,
        streamMs: fc.nat(200),
      })
      .map(
        ({ body, ns, streamMs }): ImageInput => ({
          service,
          method,
          payload: sanitizeImage(service, method, body.bytes),
          ns,
          streamMs,
          how: body.how,
        }),
      );
  });
  // Import as often as any three other methods; Content and Diff a quarter of the inputs.
  return fc.oneof(
    { weight: 10, arbitrary: unaryish },
    { weight: 1, arbitrary: importArb },
    { weight: 4, arbitrary: contentArb },
  );
}

/** The safety net: a Pull goes to the dead registry (or is refused before any network access). */
export function sanitizeImage(service: string, method: string, bytes: Uint8Array): Uint8Array {
  return service === T && method === "Pull" ? sanitizePull(bytes) : bytes;
}
