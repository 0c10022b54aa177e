// The task status enum (containerd.v1.types.Status), re-exported under a short name.
import { tasktypes } from "@tsrunc/protocol/shim";

export const Status = tasktypes.Status;
