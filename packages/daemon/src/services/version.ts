// containerd.services.version.v1.Version: tsruncd's version. The revision is the source
// revision the build recorded, when it recorded one (none yet: empty, as a containerd built
// from a tarball without git reports).
import type { versionapi } from "@tsrunc/protocol/daemon";
import { daemonVersion } from "../version.js";

export class VersionApi {
  constructor(
    private readonly version = daemonVersion,
    private readonly revision = "",
  ) {}

  get(): versionapi.VersionResponse {
    return { version: this.version, revision: this.revision };
  }
}
