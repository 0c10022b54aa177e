// Update: new cgroup limits for a container, `runc update --resources -` with the runtime-spec
// LinuxResources that containerd sends as JSON inside an Any
// (types.containerd.io/opencontainers/runtime-spec/1/LinuxResources).
//
// The JSON goes to runc as received, after checking that it is one JSON object: parsing and
// re-serializing would round 64-bit values (a memory limit of MaxInt64, say) to doubles. Like
// containerd's shim, a created, running or paused container may be updated; a stopped one not
// (process-state-table.ts); the update itself is InitProcess.update.
// Annotations of the request are not used (containerd's runc shim ignores them too).
import { isAnyOf, OciLinuxResourcesType, type task } from "@tsrunc/protocol/shim";
import { Code, TtrpcError } from "@tsrunc/ttrpc";

/** The LinuxResources JSON text of an UpdateTaskRequest; InvalidArgument for anything else. */
export function resourcesJson(any: task.UpdateTaskRequest["resources"]): string {
  try {
    return checkedResources(any);
  } catch (err) {
    // A fatal TextDecoder error (not UTF-8) is also the caller's mistake.
    if (err instanceof TtrpcError) throw err;
    throw new TtrpcError(Code.InvalidArgument, `resources: ${(err as Error).message}`);
  }
}

function checkedResources(any: task.UpdateTaskRequest["resources"]): string {
  if (!any || (!any.typeUrl && any.value.length === 0)) {
    throw new TtrpcError(Code.InvalidArgument, "update needs resources");
  }
  if (!isAnyOf(any, OciLinuxResourcesType)) {
    throw new TtrpcError(
      Code.InvalidArgument,
      `resources must be ${OciLinuxResourcesType.typeUrl}, got ${JSON.stringify(any.typeUrl)}`,
    );
  }
  const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(any.value);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new TtrpcError(Code.InvalidArgument, `resources are not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new TtrpcError(Code.InvalidArgument, "resources must be a JSON object");
  }
  return text;
}
