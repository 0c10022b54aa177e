// The records the metadata store keeps. They mirror containerd's containers.Container (the
// Containers API) and what our daemon must know of a task to find its shim again after a restart.

/** A google.protobuf.Any as containerd stores it: a type URL and the encoded message. */
export interface AnyValue {
  typeUrl: string;
  value: Uint8Array;
}

export interface ContainerRecord {
  namespace: string;
  id: string;
  /** Never holds an empty value: like containerd, a label set to "" is a label removed. */
  labels: Record<string, string>;
  image: string;
  runtime: { name: string; options?: AnyValue };
  /** The OCI spec as containerd's Any. */
  spec?: AnyValue;
  snapshotter: string;
  snapshotKey: string;
  extensions: Record<string, AnyValue>;
  sandboxId: string;
  /** Set by the store (millisecond precision), never by the caller. */
  createdAt: Date;
  updatedAt: Date;
}

/** What createContainer takes: the store sets the timestamps; the rest defaults to empty. */
export type NewContainer = Pick<ContainerRecord, "namespace" | "id" | "runtime"> &
  Partial<Omit<ContainerRecord, "namespace" | "id" | "runtime" | "createdAt" | "updatedAt">>;

/** What updateContainer takes; see MetadataStore.updateContainer for which fields count. */
export type ContainerPatch = Partial<ContainerRecord>;

export const taskPhases = ["creating", "created", "running", "paused", "stopped", "deleting"] as const;
export type TaskPhase = (typeof taskPhases)[number];

export interface TaskRecord {
  namespace: string;
  id: string;
  phase: TaskPhase;
  bundle: string;
  shimBinary: string;
  /** The shim's ttrpc address (unix:///…), "" until the shim's `start` has printed it. */
  address: string;
  pid: number;
  exitStatus: number;
  exitedAt?: Date;
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
  runtimeOptions?: Uint8Array;
  /** JSON-serialisable network state (CNI result), shape decided later. */
  network?: unknown;
  /** The caller's if it gives one, otherwise the time of the write. */
  updatedAt: Date;
}

/** What putTask takes: the identity, phase and bundle; the rest defaults to empty/zero. */
export type NewTask = Pick<TaskRecord, "namespace" | "id" | "phase" | "bundle"> &
  Partial<Omit<TaskRecord, "namespace" | "id" | "phase" | "bundle">>;

/**
 * What updateTask takes. A field left out (or undefined) is kept, except the optional ones
 * (exitedAt, runtimeOptions, network): naming them with the value undefined clears them.
 * updatedAt, when not given, becomes the time of the write.
 */
export type TaskPatch = Partial<Omit<TaskRecord, "namespace" | "id">>;
