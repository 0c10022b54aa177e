// The native pieces together with real runc, as the shim uses them: subreaper + reaper for the
// container's init, receiveFd for --console-socket, openPty for its output, resize, shutdown.
import { randomBytes } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import t from "tap";
import { receiveFd } from "./console-socket.js";
import { openPty } from "./pty-stream.js";
import { createReaper, setChildSubreaper } from "./reaper.js";

const BUSYBOX = "/bin/busybox";
const RUNC = process.env.TSRUNC_RUNC ?? "runc";
const runcMissing = (await execa(RUNC, ["--version"], { reject: false })).exitCode !== 0;
const skip = runcMissing
  ? "runc is not installed"
  : !existsSync(BUSYBOX)
    ? "busybox is not installed"
    : process.getuid?.() !== 0
      ? "needs root"
      : false;

setChildSubreaper();

t.test(
  "runc create --console-socket: the init is ours to reap, its pty output all arrives",
  { skip },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "tsrunc-native-"));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const bundle = join(dir, "bundle");
    mkdirSync(join(bundle, "rootfs", "bin"), { recursive: true });
    copyFileSync(BUSYBOX, join(bundle, "rootfs", "bin", "busybox"));
    symlinkSync("busybox", join(bundle, "rootfs", "bin", "sh"));
    await execa(RUNC, ["spec"], { cwd: bundle });
    const spec = JSON.parse(readFileSync(join(bundle, "config.json"), "utf8"));
    spec.process.terminal = true;
    spec.process.args = ["sh", "-c", "echo hello from the container; /bin/busybox stty size; exit 7"];
    writeFileSync(join(bundle, "config.json"), JSON.stringify(spec));

    const root = join(dir, "state");
    const id = `tsrunc-native-${randomBytes(4).toString("hex")}`;
    t.teardown(() => execa(RUNC, ["--root", root, "delete", "--force", id], { reject: false }));
    const reaper = createReaper();
    t.teardown(() => reaper.close());

    const since = new Date();
    const receiving = receiveFd(join(dir, "console.sock"), { timeoutMs: 20_000 });
    const pidFile = join(dir, "init.pid");
    await execa(RUNC, [
      "--root",
      root,
      "create",
      "--bundle",
      bundle,
      "--console-socket",
      join(dir, "console.sock"),
      "--pid-file",
      pidFile,
      id,
    ]);
    const pty = openPty(await receiving);
    t.teardown(() => pty.destroy());
    let output = "";
    pty.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
    });
    const closed = new Promise((resolve) => pty.once("close", resolve));

    const pid = Number(readFileSync(pidFile, "utf8"));
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    t.equal(
      Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]),
      process.pid,
      "runc exited: the init is our child",
    );
    const exited = reaper.watch(pid, { since });
    pty.resize(30, 100);

    await execa(RUNC, ["--root", root, "start", id]);
    const exit = await exited;
    t.equal(exit.status, 7, "the init's exit code");
    pty.shutdown();
    await closed;
    t.match(output, /hello from the container\r?\n30 100\r?\n$/, "all the output, sized as we said");
  },
);
