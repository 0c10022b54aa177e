#!/bin/sh
# containerd-shim-tsrunc-v2, the part that runs in sh. The bundle step (scripts/lib/bundle-shim.mjs)
# makes the installed file both a POSIX sh script and the Node launcher: a shebang for sh, then
# `":"` and the opening of a JS block comment, this file, the comment's end, then launcher.cjs.
# sh runs these lines up to `exec node "$0"`; Node then sees a string and a comment before the
# launcher's code. (Two source files because a formatter would not leave the wrapper alone. This
# file must never contain the two characters that end a JS block comment.)
#
# sh first, because the cheapest Node start-up is ~25 ms here and a shell's ~1 ms:
# - the post-exit `delete` containerd 1.6 runs (and waits for) after every shim exit: a clean
#   Task.Delete left the DeleteResponse in the bundle (tsrunc-deleted.pb), so nothing is left to
#   clean but the server's socket (a server that died between Delete and Shutdown). Anything this
#   does not recognise (flags, ids, no marker, no sha256sum) falls through to the bundle's delete.
# - grouped mode's `start` when the group already has a live server: print its address.
# - Node's own knobs from containerd's environment are dropped (NODE_EXTRA_CA_CERTS alone costs
#   ~30-50 ms of every Node start-up here: Node reads every certificate before the first line
#   runs; NODE_OPTIONS would also make V8 reject the code cache). TSRUNC_KEEP_NODE_ENV=1 keeps
#   them (the bench's profiler). The server gets no NODE_* either (see cli/start.ts).
# Go-style flags as containerd passes them; sets ns addr id bundle verb. Fails (1) on anything
# unexpected, which sends the caller to Node.
parse_flags() {
  ns= addr= id= bundle= verb=
  while [ $# -gt 0 ]; do
    case $1 in
      -debug | --debug | -debug=* | --debug=*) ;;
      -namespace=* | --namespace=*) ns=${1#*=} ;;
      -address=* | --address=*) addr=${1#*=} ;;
      -id=* | --id=*) id=${1#*=} ;;
      -bundle=* | --bundle=*) bundle=${1#*=} ;;
      -publish-binary=* | --publish-binary=* | -socket=* | --socket=*) ;;
      -namespace | --namespace | -address | --address | -id | --id | -bundle | --bundle | \
        -publish-binary | --publish-binary | -socket | --socket)
        [ $# -ge 2 ] || return 1
        case $1 in
          *namespace) ns=$2 ;; *address) addr=$2 ;; *id) id=$2 ;; *bundle) bundle=$2 ;;
        esac
        shift ;;
      -*) return 1 ;;
      *) verb=$1; break ;;
    esac
    shift
  done
  # containerd's identifier rule (@tsrunc/shim-contract/identifiers), or let Node answer.
  for v in "$id" "$ns"; do
    case $v in '' | *[!A-Za-z0-9._-]* | [._-]* | *[._-] | *[._-][._-]*) return 1 ;; esac
    [ ${#v} -le 76 ] || return 1
  done
  case $bundle in '') bundle=$PWD ;; /*) ;; *) bundle=$PWD/$bundle ;; esac
}

# The socket @tsrunc/shim-contract/socket-path names for group $1 (sets sock).
socket_for() {
  sum=$(printf '%s\000%s\000%s' "$addr" "$ns" "$1" | sha256sum 2>/dev/null) || return 1
  sum=${sum%% *}
  [ ${#sum} -eq 64 ] || return 1
  dir=${TSRUNC_SOCKET_DIR:-/run/tsrunc/s}
  sock=$dir/$sum
  [ ${#sock} -le 107 ] || sock=$dir/$(printf %.32s "$sum")
}

# Field 22 of /proc/$1/stat (the start time in ticks; sets started), all shell builtins.
start_time() {
  [ -r "/proc/$1/stat" ] || return 1
  read -r stat <"/proc/$1/stat" || return 1
  set -f
  # shellcheck disable=SC2086 # the fields after the command name, split on purpose
  set -- ${stat##*) }
  set +f
  [ $# -ge 20 ] || return 1
  shift 19
  started=$1
}

fast_delete() {
  [ "$verb" = delete ] || return 1
  [ -f "$bundle/tsrunc-deleted.pb" ] || return 1
  # This container's own socket (a pod's or group's shared socket belongs to its live shim).
  socket_for "$id" || return 1
  if [ -e "$sock" ] || [ -L "$sock" ]; then rm -f -- "$sock"; fi
  exec cat -- "$bundle/tsrunc-deleted.pb"
}

# Grouped mode's `start` when the namespace's group already has a live server (see
# cli/start.ts and cli/serve.ts): that server keeps `<socket>.live` ("pid starttime") while it
# holds a container, and removes it before it lingers or exits; the pid's start time must match.
# Then, as the Node `start` does: the address into the bundle, and on stdout.
fast_group_start() {
  [ "$verb" = start ] || return 1
  case ${0##*[/]} in *tsrunc-grouped*) ;; *) [ "$TSRUNC_GROUPED" = 1 ] || return 1 ;; esac
  # A spec naming its group is left to Node, which reads the JSON properly.
  [ -f "$bundle/config.json" ] || return 1
  if grep -q 'io.tsrunc.shim-group' "$bundle/config.json"; then return 1; fi
  socket_for "group:default" || return 1
  [ -S "$sock" ] || return 1
  [ -r "$sock.live" ] || return 1
  read -r pid want <"$sock.live" || return 1
  start_time "$pid" || return 1
  [ -n "$want" ] && [ "$started" = "$want" ] || return 1
  cat >/dev/null # the runtime options: the live server already has its own
  printf 'unix://%s' "$sock" >"$bundle/address.$$.tmp" || return 1
  mv -f -- "$bundle/address.$$.tmp" "$bundle/address" || return 1
  printf 'unix://%s' "$sock"
  exit 0
}

# Nothing but the answer may reach containerd, which reads stdout and stderr as one (a marker
# that vanishes between a test and a read would otherwise print the shell's complaint): stderr
# goes nowhere while sh answers; a fall-through to Node restores it.
if parse_flags "$@" 2>/dev/null; then
  fast_delete 2>/dev/null
  fast_group_start 2>/dev/null
fi
[ "$TSRUNC_KEEP_NODE_ENV" = 1 ] ||
  unset NODE_OPTIONS NODE_EXTRA_CA_CERTS NODE_DEBUG NODE_DEBUG_NATIVE NODE_V8_COVERAGE \
    NODE_REDIRECT_WARNINGS NODE_PENDING_DEPRECATION NODE_COMPILE_CACHE NODE_ICU_DATA
exec node "$0" "$@"
