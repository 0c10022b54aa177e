// google.protobuf.Any the way containerd 1.6 fills it (github.com/containerd/typeurl v1):
//
// - a protobuf message gets its bare full name as type_url, e.g. "containerd.events.TaskExit",
//   "containerd.runc.v1.Options", "io.containerd.cgroups.v1.Metrics" — no
//   "type.googleapis.com/" prefix — and its protobuf encoding as value;
// - a Go struct registered with typeurl.Register gets the registered path, e.g.
//   "types.containerd.io/opencontainers/runtime-spec/1/Process", and its encoding/json output
//   as value.
//
// Unpacking looks the type URL up in a registry; a URL with a "host/" prefix in front of a
// registered protobuf name (what protobuf-go's anypb writes) is accepted too, as typeurl v2 does.

import {
  containerd_events,
  containerd_runc_v1,
  containerd_services_events_ttrpc_v1,
  containerd_task_v2,
  containerd_types,
  containerd_v1_types,
  google_protobuf,
  google_rpc,
  io_containerd_cgroups_v1,
  io_containerd_cgroups_v2,
} from "./generated/shim.js";
import {
  type OciLinuxResources,
  type OciProcess,
  type OciSpec,
  type OciWindowsResources,
  RUNTIME_SPEC_TYPE_URL_PREFIX,
} from "./oci.js";
import type { MessageInit, MessageType } from "./runtime.js";

type Any = google_protobuf.Any;

/** A type whose Any value is JSON (Go's encoding/json), registered under a path-like URL. */
export interface JsonType<T> {
  readonly typeUrl: string;
  readonly json: true;
  /** Type-level only: the shape of the value. */
  readonly __value?: T;
}

export function jsonType<T>(typeUrl: string): JsonType<T> {
  return Object.freeze({ typeUrl, json: true as const });
}

export const OciSpecType: JsonType<OciSpec> = jsonType(`${RUNTIME_SPEC_TYPE_URL_PREFIX}Spec`);
export const OciProcessType: JsonType<OciProcess> = jsonType(`${RUNTIME_SPEC_TYPE_URL_PREFIX}Process`);
export const OciLinuxResourcesType: JsonType<OciLinuxResources> = jsonType(
  `${RUNTIME_SPEC_TYPE_URL_PREFIX}LinuxResources`,
);
export const OciWindowsResourcesType: JsonType<OciWindowsResources> = jsonType(
  `${RUNTIME_SPEC_TYPE_URL_PREFIX}WindowsResources`,
);
/** The runtime-spec features document (`runc features`), as a shim's -info reports it. */
export const OciFeaturesType: JsonType<Record<string, unknown>> = jsonType(
  `${RUNTIME_SPEC_TYPE_URL_PREFIX}features/Features`,
);

// biome-ignore lint/suspicious/noExplicitAny: a registry holds types of every message shape
export type AnyType = MessageType<any> | JsonType<any>;

/** The type URL containerd writes for a type. */
export function typeUrlOf(type: AnyType): string {
  return "json" in type ? type.typeUrl : type.typeName;
}

// biome-ignore lint/suspicious/noExplicitAny: narrows AnyType, whose members are generic over any
function isJson(type: AnyType): type is JsonType<any> {
  return "json" in type;
}

/**
 * JSON as Go's encoding/json writes it: like JSON.stringify, but with <, >, & and U+2028/U+2029
 * escaped (they can only occur inside strings, so a global replacement is exact).
 */
export function goJsonStringify(value: unknown): string {
  const s = JSON.stringify(value);
  if (s === undefined) throw new TypeError("value is not representable as JSON");
  return s.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

export class AnyRegistry {
  readonly #types = new Map<string, AnyType>();

  /** Adds types under their type URL. Registering a different type under a taken URL throws. */
  register(...types: AnyType[]): this {
    for (const t of types) {
      const url = typeUrlOf(t);
      const had = this.#types.get(url);
      if (had !== undefined && had !== t) throw new Error(`type URL ${url} is already registered`);
      this.#types.set(url, t);
    }
    return this;
  }

  /** The type registered for a URL, if any (also for "<host>/<proto name>" URLs). */
  lookup(typeUrl: string): AnyType | undefined {
    const t = this.#types.get(typeUrl);
    if (t !== undefined) return t;
    const slash = typeUrl.lastIndexOf("/");
    if (slash < 0) return undefined;
    const p = this.#types.get(typeUrl.slice(slash + 1));
    return p !== undefined && !isJson(p) ? p : undefined;
  }

  /** Every registered type URL. */
  typeUrls(): string[] {
    return [...this.#types.keys()];
  }

  /** Decodes an Any by its type URL. Throws if the URL is not registered or the value is bad. */
  unpack(any: Any): unknown {
    const t = this.lookup(any.typeUrl);
    if (t === undefined) throw new Error(`no type registered for type URL ${JSON.stringify(any.typeUrl)}`);
    return decodeValue(t, any);
  }
}

function decodeValue(type: AnyType, any: Any): unknown {
  if (isJson(type)) {
    try {
      return JSON.parse(utf8Decoder.decode(any.value));
    } catch (err) {
      throw new Error(`bad JSON in Any of type ${any.typeUrl}: ${(err as Error).message}`, { cause: err });
    }
  }
  return type.decode(any.value);
}

/** True when `type` is a protobuf message type whose URL matches, allowing a "<host>/" prefix. */
function urlMatches(type: AnyType, typeUrl: string): boolean {
  const want = typeUrlOf(type);
  if (typeUrl === want) return true;
  return !isJson(type) && typeUrl.endsWith(`/${want}`);
}

function messageTypesOf(ns: object): AnyType[] {
  return Object.values(ns).filter(
    (v): v is MessageType<unknown> =>
      typeof v === "object" && v !== null && "typeName" in v && "decodeFrom" in v,
  );
}

/**
 * The default registry: every message of the shim-side packages (google.protobuf, google.rpc,
 * containerd.types, containerd.v1.types, containerd.task.v2, containerd.events,
 * containerd.services.events.ttrpc.v1, containerd.runc.v1, io.containerd.cgroups.v1/v2) and
 * the four runtime-spec JSON types. Register more with `anyRegistry.register(...)`.
 */
export const anyRegistry: AnyRegistry = new AnyRegistry().register(
  ...[
    google_protobuf,
    google_rpc,
    containerd_types,
    containerd_v1_types,
    containerd_task_v2,
    containerd_events,
    containerd_services_events_ttrpc_v1,
    containerd_runc_v1,
    io_containerd_cgroups_v1,
    io_containerd_cgroups_v2,
  ].flatMap(messageTypesOf),
  OciSpecType,
  OciProcessType,
  OciLinuxResourcesType,
  OciWindowsResourcesType,
  OciFeaturesType,
);

/**
 * Packs a value into an Any with containerd's type URL. `type` is a generated message type, a
 * JsonType, or a type URL registered in `registry`.
 */
export function packAny<T>(type: MessageType<T>, message: MessageInit<T>): Any;
export function packAny<T>(type: JsonType<T>, value: T): Any;
export function packAny(typeUrl: string, value: unknown, registry?: AnyRegistry): Any;
export function packAny(type: AnyType | string, value: unknown, registry: AnyRegistry = anyRegistry): Any {
  let t: AnyType | undefined;
  if (typeof type === "string") {
    t = registry.lookup(type);
    if (t === undefined) throw new Error(`no type registered for type URL ${JSON.stringify(type)}`);
  } else {
    t = type;
  }
  if (isJson(t)) return { typeUrl: t.typeUrl, value: utf8.encode(goJsonStringify(value)) };
  return { typeUrl: t.typeName, value: t.encode(value as MessageInit<unknown>) };
}

/** Decodes an Any through the registry: a message object, or parsed JSON for JSON types. */
export function unpackAny(any: Any, registry: AnyRegistry = anyRegistry): unknown {
  return registry.unpack(any);
}

/** Decodes an Any that must hold `type`; throws when its type URL names anything else. */
export function unpackAnyAs<T>(any: Any, type: MessageType<T> | JsonType<T>): T {
  if (!urlMatches(type, any.typeUrl)) {
    throw new Error(`Any holds ${JSON.stringify(any.typeUrl)}, not ${typeUrlOf(type)}`);
  }
  return decodeValue(type, any) as T;
}

/** True when the Any holds `type` (by type URL). */
export function isAnyOf(any: Any | undefined | null, type: AnyType): boolean {
  return any != null && urlMatches(type, any.typeUrl);
}
