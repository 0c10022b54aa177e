// containerd's identifier rule, checked before any path is built from an id: letters and digits
// in runs joined by single '.', '_' or '-', at most 76 characters. This keeps "../x", NUL bytes,
// slashes and unicode out of every path the shim constructs.
const identifier = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
export const maxIdentifierLength = 76;

/** Returns a reason when `id` is not a valid identifier, or undefined when it is. */
export function identifierProblem(id: string): string | undefined {
  if (id.length === 0) return "identifier must not be empty";
  if (id.length > maxIdentifierLength) return `identifier is longer than ${maxIdentifierLength} characters`;
  if (!identifier.test(id))
    return `identifier ${JSON.stringify(id.slice(0, 80))} must match ${identifier.source}`;
  return undefined;
}
