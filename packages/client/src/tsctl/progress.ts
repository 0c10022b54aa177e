// The progress display of `images pull` and `images import`: one bar per blob and a total, drawn
// by cli-progress on our stdout, only when stdout is a terminal (and not with -q). cli-progress
// is loaded here, lazily, so that no other tsctl command pays for it and a pull into a pipe or
// a file does not load it either.

import type { PullProgress } from "../images.js";
import { formatBytes } from "./output.js";

/** What a pull or import reports to; the no-op one when there is no terminal. */
export interface ProgressDisplay {
  pull(p: PullProgress): void;
  /** Import: bytes sent of `total` (0 when unknown). */
  bytes(sent: number, total: number): void;
  /** Leaves the last frame on screen, restores the cursor. */
  stop(): void;
}

const NONE: ProgressDisplay = { pull() {}, bytes() {}, stop() {} };

/** True when a display would be drawn: stdout is a terminal and -q was not given. */
export function wantsDisplay(quiet: boolean): boolean {
  return !quiet && process.stdout.isTTY === true;
}

const shortDigest = (d: string) => (d.startsWith("sha256:") ? d.slice(7, 19) : d.slice(0, 12));

/** A short kind for a media type: manifest, index, config, layer. */
export function mediaKind(mediaType: string): string {
  if (/manifest\.list|image\.index/.test(mediaType)) return "index";
  if (/manifest/.test(mediaType)) return "manifest";
  if (/config/.test(mediaType)) return "config";
  if (/layer|rootfs/.test(mediaType)) return "layer";
  return "blob";
}

export async function progressDisplay(quiet: boolean, title: string): Promise<ProgressDisplay> {
  if (!wantsDisplay(quiet)) return NONE;
  const { MultiBar, Presets } = await import("cli-progress");
  const bars = new MultiBar(
    {
      stream: process.stdout,
      format: "{name} {bar} {status} {sizes}",
      barsize: 24,
      hideCursor: true,
      autopadding: true,
      fps: 10,
      emptyOnZero: true,
    },
    Presets.shades_classic,
  );
  // ^C mid-pull: the cursor the bars hid comes back before we die (as 128+N, like any signal);
  // the daemon sees the connection close and cancels (a pull resumes what it had fetched).
  const onSignal = (sig: NodeJS.Signals) => {
    bars.stop();
    process.exit(128 + (sig === "SIGINT" ? 2 : 15));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  type Bar = ReturnType<typeof bars.create>;
  const blobs = new Map<string, { bar: Bar; offset: number; total: number; status: string }>();
  let totalBar: Bar | undefined;
  const sizes = (v: number, t: number) => (t > 0 ? `${formatBytes(v)}/${formatBytes(t)}` : formatBytes(v));
  // The total is the first line, above the blobs' bars, whatever comes first.
  const newTotal = () => bars.create(1, 0, { name: "total".padEnd(22), status: "".padEnd(11), sizes: "" });
  let phase = "";
  const refreshTotal = () => {
    let v = 0;
    let t = 0;
    let busy: string | undefined;
    for (const b of blobs.values()) {
      v += b.offset;
      t += b.total;
      if (b.status === "downloading" || b.status === "unpacking") busy ??= b.status;
    }
    totalBar ??= newTotal();
    totalBar.setTotal(Math.max(t, 1));
    totalBar.update(v, { sizes: sizes(v, t), status: (busy ?? phase).padEnd(11) });
  };
  return {
    pull(p) {
      totalBar ??= newTotal();
      if (p.digest === "") {
        phase = p.status;
        totalBar.update({ status: phase.padEnd(11) });
        return;
      }
      let b = blobs.get(p.digest);
      if (b === undefined) {
        const name = `${mediaKind(p.mediaType)}-${shortDigest(p.digest)}`.padEnd(22);
        b = {
          bar: bars.create(Math.max(p.total, 1), 0, { name, status: p.status, sizes: "" }),
          offset: 0,
          total: p.total,
          status: p.status,
        };
        blobs.set(p.digest, b);
      }
      if (p.total > 0) b.total = p.total;
      if (p.status === "done" || p.status === "exists") b.offset = b.total;
      else if (p.offset > 0) b.offset = Math.min(p.offset, b.total || p.offset);
      b.status = p.status;
      b.bar.setTotal(Math.max(b.total, 1));
      b.bar.update(b.total === 0 && b.status !== "downloading" ? 1 : b.offset, {
        status: b.status.padEnd(11),
        sizes: sizes(b.offset, b.total),
      });
      refreshTotal();
    },
    bytes(sent, total) {
      totalBar ??= bars.create(Math.max(total, 1), 0, {
        name: title.padEnd(22),
        status: "sending",
        sizes: "",
      });
      totalBar.update(sent, { sizes: sizes(sent, total) });
    },
    stop() {
      process.removeListener("SIGINT", onSignal);
      process.removeListener("SIGTERM", onSignal);
      bars.stop();
    },
  };
}
