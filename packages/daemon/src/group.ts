// --group takes a name (looked up in /etc/group) or a numeric gid.
import { readFile } from "node:fs/promises";
import { UsageError } from "./config.js";

export async function resolveGroup(group: string): Promise<number> {
  if (/^[0-9]+$/.test(group)) return Number.parseInt(group, 10);
  const text = await readFile("/etc/group", "utf8").catch(() => "");
  for (const line of text.split("\n")) {
    const [name, , gid] = line.split(":");
    if (name === group && gid && /^[0-9]+$/.test(gid)) return Number.parseInt(gid, 10);
  }
  throw new UsageError(`unknown group ${JSON.stringify(group)}`);
}
