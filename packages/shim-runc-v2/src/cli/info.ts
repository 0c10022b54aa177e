// `-info`: containerd (2.x) asks a shim for its RuntimeInfo. Part 1 prints name and version as
// JSON; runc's features come with the shim's part 2.
import { shimVersion } from "../version.js";

export async function printInfo(): Promise<void> {
  process.stdout.write(
    `${JSON.stringify({ name: "io.containerd.tsrunc.v2", version: { version: shimVersion } })}\n`,
  );
}
