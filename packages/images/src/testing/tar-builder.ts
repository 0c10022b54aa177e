// Builds tar archives byte by byte for tests — including ones no honest tool writes (names that
// climb out, hardlinks to nowhere, huge entry counts). Not exported from the package.

export interface BuildEntry {
  name: string | Buffer;
  type?: "file" | "link" | "symlink" | "char" | "block" | "directory" | "fifo";
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  data?: string | Buffer;
  /** pax records (values raw) written in an 'x' header before the entry. */
  pax?: Record<string, string | Buffer>;
  /** Write the name through a GNU 'L' long-name header. */
  gnuLongName?: boolean;
}

const flags = { file: "0", link: "1", symlink: "2", char: "3", block: "4", directory: "5", fifo: "6" };

function octal(buf: Buffer, off: number, len: number, v: number): void {
  buf.write(`${v.toString(8).padStart(len - 1, "0")}\0`, off, len, "latin1");
}

function header(name: Buffer, flag: string, e: Partial<BuildEntry>, size: number): Buffer {
  const h = Buffer.alloc(512);
  name.copy(h, 0, 0, Math.min(name.length, 100));
  octal(h, 100, 8, e.mode ?? (flag === "5" ? 0o755 : 0o644));
  octal(h, 108, 8, e.uid ?? 0);
  octal(h, 116, 8, e.gid ?? 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, e.mtime ?? 1_700_000_000);
  h.write(flag, 156, 1, "latin1");
  if (e.linkname) Buffer.from(e.linkname, "latin1").copy(h, 157, 0, 100);
  h.write("ustar\u000000", 257, 8, "latin1");
  octal(h, 329, 8, e.devmajor ?? 0);
  octal(h, 337, 8, e.devminor ?? 0);
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of h) sum += c;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
  return h;
}

function padded(data: Buffer): Buffer[] {
  const pad = (512 - (data.length % 512)) % 512;
  return pad === 0 ? [data] : [data, Buffer.alloc(pad)];
}

function paxBody(records: Record<string, string | Buffer>): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(records)) {
    const body = Buffer.concat([Buffer.from(` ${k}=`), Buffer.from(v), Buffer.from("\n")]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    parts.push(Buffer.concat([Buffer.from(String(len)), body]));
  }
  return Buffer.concat(parts);
}

export function tarEntry(e: BuildEntry): Buffer {
  const type = e.type ?? "file";
  const data = type === "file" ? Buffer.from(e.data ?? "") : Buffer.alloc(0);
  const name = Buffer.isBuffer(e.name) ? e.name : Buffer.from(e.name);
  const out: Buffer[] = [];
  if (e.pax) {
    const body = paxBody(e.pax);
    out.push(header(Buffer.from("PaxHeader"), "x", {}, body.length), ...padded(body));
  }
  if (e.gnuLongName) {
    const body = Buffer.concat([name, Buffer.from([0])]);
    out.push(header(Buffer.from("././@LongLink"), "L", {}, body.length), ...padded(body));
  }
  out.push(header(name, flags[type], e, data.length), ...padded(data));
  return Buffer.concat(out);
}

export function tarArchive(entries: BuildEntry[]): Buffer {
  return Buffer.concat([...entries.map(tarEntry), Buffer.alloc(1024)]);
}
