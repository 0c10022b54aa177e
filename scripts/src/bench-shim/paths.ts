// Where things are, from the compiled module's place (scripts/dist/scripts/src/bench-shim).

import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The directory of the bench's modules (cpuprof.cjs sits beside them). */
export const here = dirname(fileURLToPath(import.meta.url));

/** The repository: the nearest directory above that holds tsconfig.base.json. */
export const repo = ((): string => {
  for (let dir = here; dir !== dirname(dir); dir = dirname(dir))
    if (existsSync(join(dir, "tsconfig.base.json"))) return dir;
  throw new Error(`bench-shim: no tsconfig.base.json above ${here}`);
})();

export const TS_NAME = "containerd-shim-tsrunc-v2";
