# Sourced by scripts/test and scripts/demo: installs what a fresh machine lacks.
# Debian packages: runc, containerd (1.6 in bookworm) with ctr, busybox-static for rootfs, criu
# (only a runc "Recommends", but the checkpoint tests expect CRIU's own error message), python3
# (fd-passing and pty helpers in the native tests), attr (setfattr: @tsrunc/images sets a layer's
# xattrs with it), umoci, skopeo and zstd (the images tests build, copy and compress images),
# docker-registry, apache2-utils (htpasswd) and openssl (the distribution tests' real registry with
# basic auth and TLS), containernetworking-plugins, iptables and iproute2 (the CNI tests run
# Debian's real bridge/host-local/loopback/portmap/firewall plugins), curl (the demo's -p fetch), procps (pkill in the demo's cleanup), make and g++ (node-gyp builds the
# native addons), binutils (strip: the single-file executables without Node's debug symbols). Then npm ci (when the lockfile changed) and the build.
ensure_deps() {
  local missing=()
  command -v runc >/dev/null || missing+=(runc)
  command -v containerd >/dev/null || missing+=(containerd)
  [ -x /bin/busybox ] || missing+=(busybox-static)
  command -v criu >/dev/null || missing+=(criu)
  command -v python3 >/dev/null || missing+=(python3)
  command -v setfattr >/dev/null || missing+=(attr)
  command -v umoci >/dev/null || missing+=(umoci)
  command -v skopeo >/dev/null || missing+=(skopeo)
  command -v zstd >/dev/null || missing+=(zstd)
  command -v docker-registry >/dev/null || missing+=(docker-registry)
  command -v htpasswd >/dev/null || missing+=(apache2-utils)
  command -v openssl >/dev/null || missing+=(openssl)
  [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
  command -v iptables >/dev/null || missing+=(iptables)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v curl >/dev/null || missing+=(curl)
  command -v pkill >/dev/null || missing+=(procps)
  command -v make >/dev/null || missing+=(make)
  command -v g++ >/dev/null || missing+=(g++)
  command -v strip >/dev/null || missing+=(binutils)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2 ||
      { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >&2; }
  fi
  if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci >&2
  fi
  npm run --silent build >&2
}
