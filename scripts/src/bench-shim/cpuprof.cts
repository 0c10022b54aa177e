// Preloaded into our shim's Node processes by `scripts/bench-shim --profile` through
// NODE_OPTIONS=--require (Node 20 refuses --cpu-prof in NODE_OPTIONS): starts V8's sampling
// profiler before the bundle loads and writes a .cpuprofile into $BENCH_SHIM_CPUPROF_DIR when the
// process exits (not on SIGKILL). The in-thread inspector session answers synchronously, so the
// profile can be taken in an `exit` listener. CommonJS (.cts → .cjs): --require loads it.
import fs = require("node:fs");
import inspector = require("node:inspector");
import path = require("node:path");

const dir = process.env.BENCH_SHIM_CPUPROF_DIR;
if (dir) {
  const session = new inspector.Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", {
    interval: Number(process.env.BENCH_SHIM_CPUPROF_INTERVAL_US) || 100,
  });
  session.post("Profiler.start");
  process.on("exit", () => {
    session.post("Profiler.stop", (err, res) => {
      if (err) return;
      // The verb (start, serve, delete) in the name: the summary groups by it.
      const verb = String(process.argv.at(-1)).replace(/[^a-z-]/g, "") || "other";
      const file = path.join(dir, `CPU.${Date.now()}.${process.pid}.${verb}.cpuprofile`);
      fs.writeFileSync(file, JSON.stringify(res.profile));
    });
  });
}
