// openPty with real ptys: python3 opens a pair, sends us the master over a console socket and
// plays the container on the slave side.
import { existsSync, mkdtempSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { execa, type ResultPromise } from "execa";
import t from "tap";
import { receiveFd } from "./console-socket.js";
import { openPty, type PtyStream } from "./pty-stream.js";

// argv: socket path, mode. The slave is in raw mode, so bytes pass unchanged.
const PTY_PEER = `
import fcntl, os, socket, struct, sys, termios, tty
path, mode = sys.argv[1], sys.argv[2]
m, s = os.openpty()
tty.setraw(s)
name = os.ttyname(s)
if mode == "late":
    os.close(s)  # the master is sent while no slave fd is open, as runc does
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(path)
socket.send_fds(c, [b"/dev/ptmx"], [m])
c.close()
os.close(m)

def write_all(data):
    while data:
        data = data[os.write(s, data):]

def read_line():
    data = b""
    while not data.endswith(b"\\n"):
        data += os.read(s, 100)
    return data

if mode == "echo":
    write_all(b"ready\\n")
    write_all(read_line().upper())
elif mode == "flood":
    # A child writes and exits after the parent closed its copy: the last slave fd goes with it.
    if os.fork() == 0:
        write_all(b"x" * 200000 + b"END")
        os._exit(0)
    os.close(s)
    os.wait()
elif mode == "burst":
    write_all(b"y" * 3000 + b"END")  # fits in the pty's queue: no reader needed
elif mode == "winsize":
    read_line()
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(s, termios.TIOCGWINSZ, b"\\0" * 8))
    write_all(f"{rows}x{cols}\\n".encode())
elif mode == "hold":
    read_line()
elif mode == "late":
    import time
    time.sleep(0.2)
    s = os.open(name, os.O_RDWR | os.O_NOCTTY)
    write_all(b"late\\n")
`;

async function ptyPeer(
  t: { teardown(fn: () => unknown): void },
  mode: string,
): Promise<{ pty: PtyStream; peer: ResultPromise }> {
  const dir = mkdtempSync(join(tmpdir(), "tsrunc-native-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socket = join(dir, "console.sock");
  const receiving = receiveFd(socket, { timeoutMs: 10_000 });
  const peer = execa("python3", ["-c", PTY_PEER, socket, mode]);
  peer.catch(() => {}); // a test that needs its result awaits it
  t.teardown(() => peer.kill("SIGKILL"));
  const pty = openPty(await receiving);
  t.teardown(() => pty.destroy());
  return { pty, peer };
}

function collect(pty: PtyStream): Promise<{ data: string; error?: Error }> {
  return new Promise((resolve) => {
    let data = "";
    pty.setEncoding("latin1");
    pty.on("data", (chunk: string) => {
      data += chunk;
    });
    pty.on("error", (error) => resolve({ data, error }));
    pty.on("close", () => resolve({ data }));
  });
}

t.test("reads and writes through the pty; after shutdown() it ends", async (t) => {
  const { pty, peer } = await ptyPeer(t, "echo");
  const fd = pty.fd;
  const result = collect(pty);
  pty.once("data", () => pty.write("hello pty\n"));
  t.equal((await peer).exitCode, 0);
  pty.shutdown(); // as the shim does when the reaper reports the process's exit
  t.same(await result, { data: "ready\nHELLO PTY\n" });
  t.ok(pty.destroyed, "the stream closed");
  let target = "";
  try {
    target = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {}
  t.not(target, "/dev/ptmx", "and closed its fd");
});

t.test("no output is lost: shutdown() after the writer exited drains the queue", async (t) => {
  for (let i = 0; i < 5; i++) {
    const { pty, peer } = await ptyPeer(t, "flood");
    const result = collect(pty);
    await peer; // the writer has exited: everything it wrote is queued
    pty.shutdown();
    const { data, error } = await result;
    t.equal(error, undefined, `round ${i}: no error`);
    t.equal(data.length, 200_003, `round ${i}: every byte`);
    t.ok(data.endsWith("xEND"), `round ${i}: the tail too`);
  }
});

t.test("resize sets the window size the slave side sees", async (t) => {
  const { pty, peer } = await ptyPeer(t, "winsize");
  const result = collect(pty);
  pty.resize(42, 123);
  pty.write("go\n");
  await peer;
  pty.shutdown();
  t.same(await result, { data: "42x123\n" });
});

t.test("no slave open yet is not the end (runc sends the master before opening the slave)", async (t) => {
  const { pty, peer } = await ptyPeer(t, "late");
  const result = collect(pty);
  await peer;
  pty.shutdown();
  t.same(await result, { data: "late\n" });
});

t.test("shutdown() while paused ends once reading resumes", async (t) => {
  const { pty, peer } = await ptyPeer(t, "burst");
  await peer;
  pty.shutdown();
  await new Promise((r) => setTimeout(r, 50));
  t.notOk(pty.readableEnded, "not ended while data is queued and unread");
  const { data } = await collect(pty);
  t.equal(data, `${"y".repeat(3000)}END`, "every byte, then the end");
});

t.test("destroy closes the master while the peer still holds the slave", async (t) => {
  const { pty, peer } = await ptyPeer(t, "hold");
  const closed = new Promise((resolve) => pty.once("close", resolve));
  pty.destroy();
  await closed;
  t.notOk(existsSync(`/proc/self/fd/${pty.fd}`) && readlinkSync(`/proc/self/fd/${pty.fd}`) === "/dev/ptmx");
  peer.kill("SIGKILL");
  await peer.catch(() => {});
});

t.test("over a pipe (not a pty) it ends at EOF by itself", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "tsrunc-native-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const socket = join(dir, "s");
  const receiving = receiveFd(socket);
  const peer = execa("python3", [
    "-c",
    [
      "import os, socket, sys",
      "r, w = os.pipe()",
      "c = socket.socket(socket.AF_UNIX)",
      "c.connect(sys.argv[1])",
      'socket.send_fds(c, [b"pipe"], [r])',
      "os.close(r)",
      'os.write(w, b"through a pipe")',
    ].join("\n"),
    socket,
  ]);
  const stream = openPty(await receiving);
  t.teardown(() => stream.destroy());
  t.same(await collect(stream), { data: "through a pipe" });
  await peer;
});
