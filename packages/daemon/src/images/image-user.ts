// The user a container of an image runs as, resolved as containerd 1.6's oci.WithUser,
// WithUserID, WithUsername and WithAdditionalGIDs do against the image's /etc/passwd and
// /etc/group (read through its layers, see image-files.ts):
//   "uid"          → that uid; gid from the passwd entry with that uid, else 0
//   "name"         → uid and gid of the passwd entry (NotFound when there is none)
//   "u:g"          → each part a number as is, or a name looked up (passwd / group)
// and the additional gids: the primary gid first, then (for the image's own user: "" here, which
// means the config's User, or root when it has none) every group listing the user as a member,
// except the group named like the user — what `ctr run IMAGE` gives a container.

import { Code, TtrpcError } from "@tsrunc/ttrpc";

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
}

/** What reads /etc/passwd or /etc/group of the image (undefined when absent). */
export type ImageFileReader = (path: "/etc/passwd" | "/etc/group") => Promise<Buffer | undefined>;

// runc's libcontainer/user parsing: fields split on ":", numbers that do not parse are 0,
// blank lines and lines starting with "#" skipped.
const num = (s: string | undefined) => {
  const n = Number.parseInt((s ?? "").trim(), 10);
  return Number.isFinite(n) && n >= 0 && n <= 0xffffffff ? n : 0;
};

function lines(text: string): string[][] {
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => l.split(":"));
}

export function parsePasswd(text: string): PasswdEntry[] {
  return lines(text).map((f) => ({ name: f[0] ?? "", uid: num(f[2]), gid: num(f[3]) }));
}

export function parseGroup(text: string): GroupEntry[] {
  return lines(text).map((f) => ({
    name: f[0] ?? "",
    gid: num(f[2]),
    members: (f[3] ?? "")
      .split(",")
      .map((m) => m.trim())
      .filter((m) => m !== ""),
  }));
}

const isNumber = (s: string) => /^[0-9]+$/.test(s);

class Files {
  #passwd?: Promise<PasswdEntry[] | undefined>;
  #group?: Promise<GroupEntry[] | undefined>;
  constructor(private readonly read: ImageFileReader) {}
  passwd(): Promise<PasswdEntry[] | undefined> {
    this.#passwd ??= this.read("/etc/passwd").then((b) => (b ? parsePasswd(b.toString("utf8")) : undefined));
    return this.#passwd;
  }
  group(): Promise<GroupEntry[] | undefined> {
    this.#group ??= this.read("/etc/group").then((b) => (b ? parseGroup(b.toString("utf8")) : undefined));
    return this.#group;
  }
}

async function byName(files: Files, name: string, user: string): Promise<PasswdEntry> {
  const passwd = await files.passwd();
  const entry = passwd?.find((p) => p.name === name);
  if (!entry)
    throw new TtrpcError(
      Code.NotFound,
      passwd
        ? `user ${JSON.stringify(name)} (from ${JSON.stringify(user)}) is not in the image's /etc/passwd`
        : `user ${JSON.stringify(name)} (from ${JSON.stringify(user)}): the image has no /etc/passwd`,
    );
  return entry;
}

/** containerd's WithUser: uid and gid only. */
async function withUser(files: Files, user: string): Promise<{ uid: number; gid: number }> {
  const parts = user.split(":");
  if (parts.length === 1) {
    if (isNumber(user)) {
      const uid = num(user);
      const entry = (await files.passwd())?.find((p) => p.uid === uid);
      return { uid, gid: entry ? entry.gid : 0 };
    }
    const entry = await byName(files, user, user);
    return { uid: entry.uid, gid: entry.gid };
  }
  if (parts.length !== 2)
    throw new TtrpcError(Code.InvalidArgument, `invalid USER value ${JSON.stringify(user)}`);
  const [u, g] = parts as [string, string];
  const uid = isNumber(u) ? num(u) : (await byName(files, u, user)).uid;
  let gid: number;
  if (isNumber(g)) gid = num(g);
  else {
    const groups = await files.group();
    const entry = groups?.find((e) => e.name === g);
    if (!entry)
      throw new TtrpcError(
        Code.NotFound,
        groups
          ? `group ${JSON.stringify(g)} (from ${JSON.stringify(user)}) is not in the image's /etc/group`
          : `group ${JSON.stringify(g)} (from ${JSON.stringify(user)}): the image has no /etc/group`,
      );
    gid = entry.gid;
  }
  return { uid, gid };
}

/** containerd's WithAdditionalGIDs(userstr): supplementary groups of the user, by membership. */
async function supplementary(files: Files, userstr: string): Promise<number[]> {
  let username: string;
  if (isNumber(userstr)) {
    const entry = (await files.passwd())?.find((p) => p.uid === num(userstr));
    if (!entry) return [];
    username = entry.name;
  } else username = userstr;
  const groups = await files.group();
  if (!groups) return [];
  return groups.filter((g) => g.name !== username && g.members.includes(username)).map((g) => g.gid);
}

function withPrimary(gid: number, gids: number[]): number[] {
  return gids.includes(gid) ? gids : [gid, ...gids];
}

/**
 * Resolves `user` ("" = the image's: `imageUser`, the config's User) in the image's files.
 * An empty image user is root (0:0) with root's supplementary groups.
 */
export async function resolveUser(
  user: string,
  imageUser: string,
  read: ImageFileReader,
): Promise<ResolvedUser> {
  const files = new Files(read);
  if (user === "") {
    if (imageUser === "") {
      return { uid: 0, gid: 0, additionalGids: withPrimary(0, await supplementary(files, "root")) };
    }
    const { uid, gid } = await withUser(files, imageUser);
    return { uid, gid, additionalGids: withPrimary(gid, await supplementary(files, String(uid))) };
  }
  const { uid, gid } = await withUser(files, user);
  return { uid, gid, additionalGids: [gid] };
}
