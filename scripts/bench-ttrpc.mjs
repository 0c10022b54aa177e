// ttrpc benchmark: a client (this process) and a server (a child process) over a unix socket.
// Measures unary round trips per second and latency percentiles on one connection at several
// concurrency levels, and server-streaming throughput with 64 KiB messages.
// Usage: scripts/bench-ttrpc [--duration-ms N] [--json] [--profile DIR]
//   --profile DIR writes V8 CPU profiles of client and server (.cpuprofile) into DIR.

import { fork } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const dist = new URL("../packages/ttrpc/dist/index.js", import.meta.url);
const { Client, Server } = await import(dist.href);

const bytes = { encode: (b) => b, decode: (b) => b };
const u32 = {
  encode: (n) => {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(n);
    return b;
  },
  decode: (b) => Buffer.from(b.buffer, b.byteOffset, b.length).readUInt32BE(0),
};
const Bench = {
  name: "tsrunc.bench.v1.Bench",
  methods: {
    echo: { name: "Echo", kind: "unary", requestType: bytes, responseType: bytes },
    // Request: how many 64 KiB messages to stream back.
    stream: { name: "Stream", kind: "server", requestType: u32, responseType: bytes },
  },
};
const STREAM_MESSAGE = 64 * 1024;

async function serve(path) {
  const server = new Server();
  const chunk = Buffer.alloc(STREAM_MESSAGE, 0x61);
  server.register(Bench, {
    echo: (req) => req,
    stream: function* (count) {
      for (let i = 0; i < count; i++) yield chunk;
    },
  });
  await server.listen(path);
  process.send("ready");
  process.on("message", async (m) => {
    if (m === "stop") {
      await server.close();
      process.exit(0);
    }
  });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Latencies in a growable Float64Array: the bench must not add GC work of its own. */
class Samples {
  values = new Float64Array(1 << 20);
  length = 0;
  push(v) {
    if (this.length === this.values.length) {
      const bigger = new Float64Array(this.values.length * 2);
      bigger.set(this.values);
      this.values = bigger;
    }
    this.values[this.length++] = v;
  }
  sorted() {
    return this.values.subarray(0, this.length).sort();
  }
}

async function unary(stub, concurrency, durationMs, payload) {
  const latencies = new Samples();
  let stop = false;
  const worker = async () => {
    while (!stop) {
      const t0 = performance.now();
      await stub.echo(payload);
      latencies.push(performance.now() - t0);
    }
  };
  // Warm up (JIT, buffers), then measure.
  const warm = Date.now() + Math.min(500, durationMs / 4);
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < warm) await stub.echo(payload);
    }),
  );
  const start = performance.now();
  setTimeout(() => {
    stop = true;
  }, durationMs);
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - start) / 1000;
  const sorted = latencies.sorted();
  return {
    concurrency,
    calls: sorted.length,
    callsPerSec: sorted.length / elapsed,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
  };
}

async function streaming(stub, durationMs) {
  // Warm up with a short stream, then stream until the duration is used up.
  for await (const _ of stub.stream(200)) {
  }
  let received = 0;
  let messages = 0;
  const start = performance.now();
  const deadline = start + durationMs;
  while (performance.now() < deadline) {
    for await (const m of stub.stream(2000)) {
      received += m.length;
      messages++;
    }
  }
  const elapsed = (performance.now() - start) / 1000;
  return { messageBytes: STREAM_MESSAGE, messages, bytes: received, mbPerSec: received / elapsed / 1e6 };
}

async function main() {
  const args = process.argv.slice(2);
  const durIdx = args.indexOf("--duration-ms");
  const durationMs = durIdx >= 0 ? Number(args[durIdx + 1]) : 3000;
  const json = args.includes("--json");
  const profIdx = args.indexOf("--profile");
  const profileDir = profIdx >= 0 ? args[profIdx + 1] : undefined;
  const session = profileDir ? await startProfile() : undefined;

  const dir = mkdtempSync(join(tmpdir(), "ttrpc-bench-"));
  const path = join(dir, "bench.sock");
  const child = fork(fileURLToPath(import.meta.url), ["serve", path], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    execArgv: profileDir
      ? ["--cpu-prof", "--cpu-prof-dir", profileDir, "--cpu-prof-name", "server.cpuprofile"]
      : [],
  });
  await new Promise((resolve, reject) => {
    child.once("message", resolve);
    child.once("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
  const client = await Client.connect(path);
  const stub = client.service(Bench);
  const payload = Buffer.alloc(64, 0x62);
  const results = {
    node: process.version,
    cpus: availableParallelism(),
    loadavg: loadavg()[0],
    unary: [],
    stream: undefined,
  };
  if (!json) {
    console.log(
      `ttrpc bench: node ${process.version}, ${results.cpus} CPUs (load average ${results.loadavg.toFixed(1)}), ` +
        `client and server in separate processes, ${durationMs} ms per run`,
    );
  }
  try {
    for (const c of [1, 8, 64]) {
      const r = await unary(stub, c, durationMs, payload);
      results.unary.push(r);
      if (!json) {
        console.log(
          `unary 64 B, concurrency ${String(c).padStart(2)}: ${Math.round(r.callsPerSec).toLocaleString("en-US").padStart(7)} calls/s` +
            `  p50 ${r.p50Ms.toFixed(3)} ms  p99 ${r.p99Ms.toFixed(3)} ms`,
        );
      }
    }
    results.stream = await streaming(stub, durationMs);
    if (!json) {
      console.log(
        `server stream, 64 KiB messages: ${Math.round(results.stream.mbPerSec)} MB/s (${results.stream.messages} messages)`,
      );
    } else {
      console.log(JSON.stringify(results, null, 2));
    }
  } finally {
    await client.close();
    child.send("stop");
    await new Promise((r) => child.once("exit", r));
    rmSync(dir, { recursive: true, force: true });
    if (session) await stopProfile(session, join(profileDir, "client.cpuprofile"));
  }
}

async function startProfile() {
  const { Session } = await import("node:inspector/promises");
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
  return session;
}

async function stopProfile(session, file) {
  const { writeFileSync, mkdirSync } = await import("node:fs");
  const { profile } = await session.post("Profiler.stop");
  mkdirSync(new URL(`file://${file}/..`).pathname, { recursive: true });
  writeFileSync(file, JSON.stringify(profile));
  session.disconnect();
}

if (process.argv[2] === "serve") await serve(process.argv[3]);
else await main();
