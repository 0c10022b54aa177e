import { Code } from "@tsrunc/ttrpc";
import t from "tap";
import { parseGroup, parsePasswd, resolveUser } from "./image-user.js";

const passwd =
  "# comment\nroot:x:0:0:root:/root:/bin/sh\n\napp:x:1000:1000::/home/app:/bin/sh\nodd:x:notanumber:7::/:/bin/sh\n";
const group = "root:x:0:\napp:x:1000:\nextra:x:2000:app,other\nwheel:x:10:root\nbin:x:1:root,app\n";
const files =
  (p = passwd, g: string | undefined = group) =>
  async (path: string) =>
    path === "/etc/passwd"
      ? p === undefined
        ? undefined
        : Buffer.from(p)
      : g === undefined
        ? undefined
        : Buffer.from(g);

t.test("parsing as runc's user package: comments and blank lines skipped, bad numbers 0", async (t) => {
  t.same(parsePasswd(passwd), [
    { name: "root", uid: 0, gid: 0 },
    { name: "app", uid: 1000, gid: 1000 },
    { name: "odd", uid: 0, gid: 7 },
  ]);
  t.same(parseGroup("g:x:5:a, b,,c\n")[0], { name: "g", gid: 5, members: ["a", "b", "c"] });
});

t.test("the image's user (\"\" asked): config User, or root with root's groups", async (t) => {
  t.same(await resolveUser("", "", files()), { uid: 0, gid: 0, additionalGids: [0, 10, 1] });
  t.same(await resolveUser("", "app", files()), { uid: 1000, gid: 1000, additionalGids: [1000, 2000, 1] });
  t.same(await resolveUser("", "1000", files()), { uid: 1000, gid: 1000, additionalGids: [1000, 2000, 1] });
  t.same(
    await resolveUser("", "4242", files()),
    { uid: 4242, gid: 0, additionalGids: [0] },
    "a uid not in passwd: gid 0",
  );
  t.same(await resolveUser("", "app:extra", files()), { uid: 1000, gid: 2000, additionalGids: [2000, 1] });
});

t.test("an asked user: WithUser only (its primary gid)", async (t) => {
  t.same(await resolveUser("app", "", files()), { uid: 1000, gid: 1000, additionalGids: [1000] });
  t.same(await resolveUser("5:6", "", files(undefined as never, undefined)), {
    uid: 5,
    gid: 6,
    additionalGids: [6],
  });
  t.same(await resolveUser("0:extra", "", files()), { uid: 0, gid: 2000, additionalGids: [2000] });
  await t.rejects(resolveUser("nobody", "", files()), {
    code: Code.NotFound,
    message: /"nobody".*\/etc\/passwd/,
  });
  await t.rejects(resolveUser("app:nogroup", "", files()), {
    code: Code.NotFound,
    message: /group "nogroup"/,
  });
  await t.rejects(
    resolveUser("app", "", async () => undefined),
    { code: Code.NotFound, message: /has no \/etc\/passwd/ },
  );
  await t.rejects(resolveUser("a:b:c", "", files()), { code: Code.InvalidArgument });
  t.same(await resolveUser("77", "", async () => undefined), { uid: 77, gid: 0, additionalGids: [0] });
});
