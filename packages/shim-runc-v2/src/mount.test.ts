import { Code } from "@tsrunc/ttrpc";
import t from "tap";
import { MAX_ROOTFS_MOUNTS, mountRootfs } from "./mount.js";

t.test("more rootfs mounts than allowed are refused before anything is mounted", async (t) => {
  // Found by test/fuzz: a Create with 10,000 tmpfs mounts ran 10,000 mount(8) processes, and
  // unmounting took down only 16 layers, leaving the rest mounted.
  const mounts = Array.from({ length: MAX_ROOTFS_MOUNTS + 1 }, () => ({
    type: "tmpfs",
    source: "tmpfs",
    options: [],
  }));
  await t.rejects(mountRootfs("/nonexistent/bundle", mounts), { code: Code.InvalidArgument });
});
