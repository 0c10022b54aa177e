// tsctl images (alias i): pull, import, export, ls, inspect, rm, prune. The daemon does the
// work (ImageTools); tsctl reads the files a person names (--ca, the archive to import) and
// writes the export, so tsruncd never opens a path a client chose.

import { createReadStream, createWriteStream, readFileSync, statSync } from "node:fs";
import { rename, rm as rmFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { Code, isCode, TtrpcError } from "@tsrunc/ttrpc";
import type { Image, ImageConfigResult } from "../images.js";
import { timestampJson, toPlain } from "../json.js";
import { bool, type OptionSpec, parseArgs, str, UsageError } from "./args.js";
import { withClient } from "./connect.js";
import { GLOBAL_OPTIONS, type Globals, withGlobals } from "./globals.js";
import { formatBytes, printJson, printTable } from "./output.js";
import { progressDisplay } from "./progress.js";

const QUIET: OptionSpec = { name: "quiet", short: "q", type: "boolean" };
const PLATFORM: OptionSpec = { name: "platform", type: "string" };

/** A file a person named, read whole (small: a CA bundle); a missing one is their mistake. */
function readUserFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT" ? "no such file" : code === "EISDIR" ? "is a directory" : (err as Error).message;
    throw new TtrpcError(Code.InvalidArgument, `${what} ${path}: ${why}`);
  }
}

/** `--user USER:PASSWORD` (the password may hold colons). */
export function parseCredentials(v: string): { username: string; password: string } {
  const colon = v.indexOf(":");
  if (colon <= 0) throw new UsageError("--user needs USER:PASSWORD");
  return { username: v.slice(0, colon), password: v.slice(colon + 1) };
}

async function pull(argv: string[], base: Globals): Promise<number> {
  const p = parseArgs(argv, [
    ...GLOBAL_OPTIONS,
    PLATFORM,
    QUIET,
    { name: "plain-http", type: "boolean" },
    { name: "ca", type: "string" },
    { name: "user", short: "u", type: "string" },
    { name: "no-unpack", type: "boolean" },
    { name: "max-concurrent-downloads", type: "string" },
  ]);
  const [ref, ...extra] = p.positionals;
  if (ref === undefined || ref === "") throw new UsageError("images pull needs an image reference");
  if (extra.length > 0) throw new UsageError("images pull takes one reference");
  const ca = str(p, "ca");
  const user = str(p, "user");
  const creds = user === undefined ? undefined : parseCredentials(user);
  const mcd = str(p, "max-concurrent-downloads");
  if (mcd !== undefined && !/^[1-9][0-9]{0,3}$/.test(mcd))
    throw new UsageError("--max-concurrent-downloads needs a number from 1 to 9999");
  const caPem = ca === undefined ? undefined : readUserFile(ca, "--ca");
  const platform = str(p, "platform");
  return withClient(withGlobals(base, p), async (client) => {
    const display = await progressDisplay(bool(p, "quiet"), "pull");
    let image: Image;
    try {
      image = await client.images.pull(
        {
          ref,
          ...(platform !== undefined ? { platform } : {}),
          plainHttp: bool(p, "plain-http"),
          ...(caPem !== undefined ? { caPem } : {}),
          ...(creds ?? {}),
          unpack: !bool(p, "no-unpack"),
          ...(mcd !== undefined ? { maxConcurrentDownloads: Number(mcd) } : {}),
        },
        { onProgress: (x) => display.pull(x) },
      );
    } finally {
      display.stop();
    }
    if (process.stdout.isTTY && !bool(p, "quiet"))
      process.stdout.write(`${image.name}: ${image.target.digest}\n`);
    return 0;
  });
}

async function importCmd(argv: string[], base: Globals): Promise<number> {
  const p = parseArgs(argv, [
    ...GLOBAL_OPTIONS,
    PLATFORM,
    QUIET,
    { name: "base-name", type: "string" },
    { name: "no-unpack", type: "boolean" },
  ]);
  const [file, ...extra] = p.positionals;
  if (file === undefined || file === "") throw new UsageError("images import needs a FILE (- for stdin)");
  if (extra.length > 0) throw new UsageError("images import takes one FILE");
  let source: Readable;
  let total = 0;
  if (file === "-") {
    source = process.stdin;
  } else {
    try {
      const st = statSync(file);
      if (st.isDirectory())
        throw new TtrpcError(Code.InvalidArgument, `images import ${file}: is a directory`);
      total = st.size;
    } catch (err) {
      if (err instanceof TtrpcError) throw err;
      throw new TtrpcError(Code.InvalidArgument, `images import ${file}: no such file`);
    }
    source = createReadStream(file, { highWaterMark: 1 << 20 });
  }
  const baseName = str(p, "base-name");
  const platform = str(p, "platform");
  return withClient(withGlobals(base, p), async (client) => {
    const display = await progressDisplay(bool(p, "quiet"), basename(file));
    let images: Image[];
    try {
      images = await client.images.import(
        source,
        {
          unpack: !bool(p, "no-unpack"),
          ...(baseName !== undefined ? { baseName } : {}),
          ...(platform !== undefined ? { platform } : {}),
        },
        { onBytes: (n) => display.bytes(n, total) },
      );
    } finally {
      display.stop();
      if (file !== "-") source.destroy();
    }
    if (!bool(p, "quiet")) for (const i of images) process.stdout.write(`${i.name}\n`);
    return 0;
  });
}

async function exportCmd(argv: string[], base: Globals): Promise<number> {
  const p = parseArgs(argv, [...GLOBAL_OPTIONS, PLATFORM]);
  const [file, ...refs] = p.positionals;
  if (file === undefined || file === "" || refs.length === 0)
    throw new UsageError("images export needs a FILE (- for stdout) and at least one image");
  const platform = str(p, "platform");
  return withClient(withGlobals(base, p), async (client) => {
    // The records first, so that a mistyped name fails before any file is made.
    const names: string[] = [];
    for (const ref of refs) names.push((await findImageRecord(client, ref)).name);
    const opts = platform !== undefined ? { platform } : {};
    if (file === "-") {
      await client.images.export(names, process.stdout as Writable, opts);
      return 0;
    }
    // Written beside the target and renamed at the end: no half archive under FILE.
    const tmp = join(dirname(file), `.${basename(file)}.tsctl-${process.pid}`);
    let out: Writable;
    try {
      out = createWriteStream(tmp, { flags: "wx", mode: 0o644 });
      await new Promise<void>((resolve, reject) => {
        out.once("open", () => resolve());
        out.once("error", reject);
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new TtrpcError(
        Code.InvalidArgument,
        `images export ${file}: ${code === "ENOENT" ? "no such directory" : (err as Error).message}`,
      );
    }
    try {
      await client.images.export(names, out, opts);
      await rename(tmp, file);
    } catch (err) {
      out.destroy();
      await rmFile(tmp, { force: true });
      throw err;
    }
    return 0;
  });
}

/** Lazily imported: run.ts holds the lookup with its normalization. */
async function findImageRecord(client: Parameters<Parameters<typeof withClient>[1]>[0], name: string) {
  const { findImage } = await import("./run.js");
  return findImage(client, name);
}

/** An image record as JSON (times as RFC 3339). */
export function imageJson(i: Image): Record<string, unknown> {
  return {
    name: i.name,
    target: toPlain(i.target),
    labels: i.labels,
    createdAt: timestampJson(i.createdAt),
    updatedAt: timestampJson(i.updatedAt),
  };
}

function formatOf(v: string | undefined): "table" | "json" {
  if (v === undefined || v === "table") return "table";
  if (v === "json") return "json";
  throw new UsageError(`unknown --format ${JSON.stringify(v)} (use json)`);
}

async function ls(argv: string[], base: Globals): Promise<number> {
  const p = parseArgs(argv, [...GLOBAL_OPTIONS, QUIET, { name: "format", type: "string" }]);
  const format = formatOf(str(p, "format"));
  return withClient(withGlobals(base, p), async (client) => {
    const list = await client.images.list(p.positionals);
    list.sort((a, b) => a.name.localeCompare(b.name));
    if (format === "json") printJson(list.map(imageJson));
    else if (bool(p, "quiet")) process.stdout.write(list.map((i) => `${i.name}\n`).join(""));
    else
      printTable(
        ["REF", "TYPE", "DIGEST", "CREATED"],
        list.map((i) => [
          i.name,
          i.target.mediaType || "-",
          i.target.digest || "-",
          timestampJson(i.createdAt) ?? "-",
        ]),
      );
    return 0;
  });
}

async function inspect(argv: string[], base: Globals): Promise<number> {
  const p = parseArgs(argv, [...GLOBAL_OPTIONS, PLATFORM]);
  const [ref, ...extra] = p.positionals;
  if (ref === undefined) throw new UsageError("images inspect needs an image");
  if (extra.length > 0) throw new UsageError("images inspect takes one image");
  const platform = str(p, "platform");
  return withClient(withGlobals(base, p), async (client) => {
    const image = await findImageRecord(client, ref);
    let cfg: ImageConfigResult | undefined;
    try {
      cfg = await client.images.config({ name: image.name, ...(platform !== undefined ? { platform } : {}) });
    } catch (err) {
      // A record whose platform is not here still inspects; a lost daemon does not.
      if (isCode(err, Code.Unavailable)) throw err;
    }
    printJson(
      {
        ...imageJson(image),
        ...(cfg === undefined
          ? {}
          : {
              manifest: cfg.manifest === undefined ? undefined : toPlain(cfg.manifest),
              chainId: cfg.chainId,
              config: cfg.config,
            }),
      },
      true,
    );
    return 0;
  });
}

async function rm(argv: string[], base: Globals): Promise<number> {
  const p = parseArgs(argv, [...GLOBAL_OPTIONS, { name: "sync", type: "boolean" }]);
  if (p.positionals.length === 0) throw new UsageError("images rm needs at least one image");
  return withClient(withGlobals(base, p), async (client) => {
    const failures: Error[] = [];
    for (const ref of p.positionals) {
      try {
        const image = await findImageRecord(client, ref);
        await client.images.delete(image.name, { sync: bool(p, "sync") });
        process.stdout.write(`${image.name}\n`);
      } catch (err) {
        if (isCode(err, Code.Unavailable)) throw err;
        failures.push(err as Error);
      }
    }
    if (failures.length === 0) return 0;
    const first = failures[0]!;
    if (failures.length === 1) throw first;
    throw new Error(`${first.message} (and ${failures.length - 1} more failed)`, { cause: first });
  });
}

async function prune(argv: string[], base: Globals): Promise<number> {
  const p = parseArgs(argv, [...GLOBAL_OPTIONS, { name: "all", type: "boolean" }]);
  if (p.positionals.length > 0) throw new UsageError("images prune takes no arguments");
  return withClient(withGlobals(base, p), async (client) => {
    const r = await client.images.prune({ all: bool(p, "all") });
    process.stdout.write(
      `removed ${r.blobsRemoved} blobs and ${r.snapshotsRemoved} snapshots, freed ${formatBytes(r.bytesFreed)}\n`,
    );
    return 0;
  });
}

const SUBCOMMANDS: Record<string, (argv: string[], g: Globals) => Promise<number>> = {
  pull,
  import: importCmd,
  export: exportCmd,
  ls,
  list: ls,
  inspect,
  rm,
  remove: rm,
  delete: rm,
  del: rm,
  prune,
};

export async function main(argv: string[], g: Globals): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined)
    throw new UsageError("images needs a command: pull, import, export, ls, inspect, rm or prune");
  const sub = SUBCOMMANDS[name];
  if (sub === undefined) throw new UsageError(`no such command: images ${name}`);
  return sub(rest, g);
}
