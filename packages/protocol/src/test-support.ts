// Test helpers: our .proto files loaded into protobufjs's reflection (an independent encoder to
// check our generated one against), and the list of every generated message type.

import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type protobufjs from "protobufjs";
import * as daemonGen from "./generated/daemon.js";
import * as shimGen from "./generated/shim.js";
import type { MessageType } from "./runtime.js";

const require = createRequire(import.meta.url);

/** packages/protocol (tests run from dist/, sources live in src/ and proto/). */
export const packageDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const protoDir = path.join(packageDir, "proto");

function listProtos(dir: string, fs: typeof import("node:fs")): string[] {
  const out: string[] = [];
  for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, ent.name);
    if (ent.isDirectory()) out.push(...listProtos(p, fs));
    else if (ent.name.endsWith(".proto")) out.push(p);
  }
  return out.sort();
}

let cached: protobufjs.Root | undefined;

/** Our proto/ tree in protobufjs reflection (full build; its bundled google types replaced by ours). */
export function reflectionRoot(): protobufjs.Root {
  if (cached) return cached;
  const pb = require("protobufjs") as typeof protobufjs & { common: Record<string, unknown> };
  const fs = require("node:fs") as typeof import("node:fs");
  for (const k of Object.keys(pb.common)) if (k.startsWith("google/protobuf/")) delete pb.common[k];
  const root = new pb.Root();
  const descriptor = require.resolve("protobufjs/google/protobuf/descriptor.proto");
  root.resolvePath = (_origin, target) =>
    path.isAbsolute(target)
      ? target
      : target === "google/protobuf/descriptor.proto"
        ? descriptor
        : path.join(protoDir, target);
  root.loadSync(listProtos(protoDir, fs));
  root.resolveAll();
  cached = root;
  return root;
}

export function isMessageType(v: unknown): v is MessageType<unknown> {
  return typeof v === "object" && v !== null && "typeName" in v && "decodeFrom" in v;
}

/** Every generated message type, shim side and daemon side. */
export function allMessageTypes(): MessageType<unknown>[] {
  const out: MessageType<unknown>[] = [];
  for (const mod of [shimGen, daemonGen]) {
    for (const ns of Object.values(mod)) {
      for (const v of Object.values(ns as object)) if (isMessageType(v)) out.push(v);
    }
  }
  return out;
}

export const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
export const fromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h.replace(/\s+/g, ""), "hex"));
