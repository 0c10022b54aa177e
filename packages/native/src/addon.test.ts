// Where the addon is found: the package build, an override, beside a bundle.
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { execa } from "execa";
import t from "tap";
import { ADDON_ENV, ADDON_FILE, addon, addonCandidates, addonPath } from "./addon.js";

const addonModule = new URL("./addon.js", import.meta.url).href;

t.test("loads from the package build", async (t) => {
  const path = addonPath();
  t.ok(path?.endsWith(join("native", "build", "Release", ADDON_FILE)), String(path));
  t.type(addon().reapExited, "function");
  t.equal(addon(), addon(), "loaded once");
});

t.test("the override is the only place looked at", async (t) => {
  t.same(addonCandidates({ [ADDON_ENV]: "/x/y.node" }), ["/x/y.node"]);
  const places = addonCandidates({});
  t.ok(places.includes(join(dirname(process.execPath), ADDON_FILE)), "beside the executable");
  const { stderr, exitCode } = await execa(
    process.execPath,
    ["--input-type=module", "-e", `import { addon } from ${JSON.stringify(addonModule)}; addon();`],
    { env: { [ADDON_ENV]: "/nonexistent/tsrunc_native.node" }, reject: false },
  );
  t.not(exitCode, 0);
  t.match(stderr, /ERR_TSRUNC_ADDON/);
  t.match(stderr, /\/nonexistent\/tsrunc_native\.node/);
});

t.test("beside a bundle (argv[1]) comes before the package build", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tsrunc-native-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(addonPath()!, join(dir, ADDON_FILE));
  const bundle = join(dir, "bundle.mjs");
  writeFileSync(
    bundle,
    `import { addon, addonPath } from ${JSON.stringify(addonModule)};\n` +
      "console.log(addonPath(), addon().isChildSubreaper());\n",
  );
  const { stdout } = await execa(process.execPath, [bundle], { env: { [ADDON_ENV]: "" } });
  t.equal(stdout, `${join(dir, ADDON_FILE)} false`);
});
