// The shim's start-up path: importing "@tsrunc/protocol/shim" must not load the daemon-side
// generated module (nor protobufjs beyond its minimal runtime). Checked in a fresh process whose
// module resolver refuses those files.

import { execFileSync } from "node:child_process";
import path from "node:path";
import { pathToFileURL } from "node:url";
import t from "tap";
import { packageDir } from "./test-support.js";

// Resolve hook: fail any import that lands on a forbidden file.
const hooks = `
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (/\\/protocol\\/dist\\/(generated\\/)?daemon\\.js$/.test(r.url)) throw new Error("daemon module loaded: " + r.url);
  if (/\\/protobufjs\\/(index|light|full)\\.js$/.test(r.url)) throw new Error("protobufjs beyond minimal: " + r.url);
  return r;
}`;

function importIn(fresh: string): string {
  const script = `
import { register } from "node:module";
register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hooks)}`)});
const m = await import(${JSON.stringify(pathToFileURL(path.join(packageDir, "dist", fresh)).href)});
console.log(Object.keys(m).length);`;
  return execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    stdio: "pipe",
  });
}

t.test("the shim-side module loads without the daemon-side module", async (t) => {
  t.match(importIn("shim.js"), /^\d+\n$/);
});

t.test("control: the root module does load the daemon side, and the hook notices", async (t) => {
  t.throws(() => importIn("index.js"), /daemon module loaded/);
});
