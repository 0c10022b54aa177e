// A layer's bytes as the uncompressed tar stream: gzip through node:zlib, zstd through fzstd (a
// pure-JS streaming decoder: Node 20's zlib has no zstd), or as they are. The compression comes
// from the media type or, when that says nothing, from the stream's first bytes.

import { Transform, type TransformCallback } from "node:stream";
import { createGunzip } from "node:zlib";
import { Code, TtrpcError } from "@tsrunc/ttrpc/status";
import { Decompress } from "fzstd";

export type Compression = "gzip" | "zstd" | "none";

/** The compression a layer media type names, or undefined when it does not say. */
export function compressionOfMediaType(mediaType: string | undefined): Compression | undefined {
  if (mediaType === undefined) return undefined;
  if (/(\+|\.tar\.)gzip$/.test(mediaType) || mediaType.endsWith(".tar.gz")) return "gzip";
  if (/(\+|\.tar\.)zstd$/.test(mediaType)) return "zstd";
  if (/(\.|\/)tar$/.test(mediaType) || mediaType === "application/vnd.docker.image.rootfs.diff.tar")
    return "none";
  return undefined;
}

/** The compression of a stream from its first bytes (magic numbers). */
export function sniffCompression(head: Uint8Array): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return "zstd";
  return "none";
}

class ZstdDecompress extends Transform {
  readonly #d: Decompress;
  constructor() {
    super();
    this.#d = new Decompress((chunk) => {
      if (chunk.length > 0) this.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.#d.push(chunk);
      cb();
    } catch (err) {
      cb(new TtrpcError(Code.InvalidArgument, `invalid zstd layer: ${(err as Error).message}`));
    }
  }
  override _flush(cb: TransformCallback): void {
    try {
      this.#d.push(new Uint8Array(0), true);
      cb();
    } catch (err) {
      cb(new TtrpcError(Code.InvalidArgument, `invalid zstd layer: ${(err as Error).message}`));
    }
  }
}

/**
 * Yields the uncompressed bytes of `source`. `compression` undefined = sniffed from the first
 * bytes. Errors of the decoder become InvalidArgument.
 */
export async function* decompressed(
  source: AsyncIterable<Uint8Array>,
  compression?: Compression,
): AsyncGenerator<Buffer> {
  const it = source[Symbol.asyncIterator]();
  // Stopping early: a stream source is destroyed (a pending read then fails at once), any other
  // iterator is asked to return.
  const stop = () => {
    const s = source as { destroy?: (err?: Error) => void };
    if (typeof s.destroy === "function") s.destroy();
    else void it.return?.()?.catch?.(() => {});
  };
  let head = Buffer.alloc(0);
  let ended = false;
  while (head.length < 4) {
    const r = await it.next();
    if (r.done) {
      ended = true;
      break;
    }
    head = Buffer.concat([head, r.value]);
  }
  const kind = compression ?? sniffCompression(head);
  if (kind === "none") {
    try {
      if (head.length > 0) yield head;
      if (ended) return;
      for (;;) {
        const r = await it.next();
        if (r.done) {
          ended = true;
          return;
        }
        yield Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
      }
    } finally {
      if (!ended) stop();
    }
  }
  const decoder = kind === "gzip" ? createGunzip({ chunkSize: 64 * 1024 }) : new ZstdDecompress();
  // Feed the decoder from the source with backpressure; read its output here.
  let feedError: unknown;
  const feed = (async () => {
    try {
      const write = (c: Uint8Array) =>
        decoder.write(c)
          ? Promise.resolve()
          : new Promise<void>((r) => {
              const done = () => {
                decoder.off("drain", done);
                decoder.off("close", done);
                r();
              };
              decoder.on("drain", done);
              decoder.on("close", done);
            });
      if (head.length > 0) await write(head);
      if (!ended) {
        for (;;) {
          if (decoder.destroyed) return;
          const r = await it.next();
          if (r.done) {
            ended = true;
            break;
          }
          await write(r.value);
        }
      }
      decoder.end();
    } catch (err) {
      feedError = err;
      decoder.destroy(err as Error);
    }
  })();
  try {
    for await (const chunk of decoder) yield chunk as Buffer;
  } catch (err) {
    if (feedError !== undefined) throw feedError;
    if (err instanceof TtrpcError) throw err;
    throw new TtrpcError(Code.InvalidArgument, `invalid ${kind} layer: ${(err as Error).message}`, {
      cause: err,
    });
  } finally {
    decoder.destroy();
    if (!ended) stop();
    await feed;
  }
}
