// Usage texts, printed on stdout for --help / `tsctl help [COMMAND]`.

export const MAIN_USAGE = `tsctl — command line for tsruncd

Usage: tsctl [--address PATH] [-n NAMESPACE] [--fifo-dir DIR] COMMAND [ARG...]

Commands:
  run          create and run a container
  containers   (c) list, inspect and remove containers
  tasks        (t) list, signal, exec into, attach to and remove tasks
  images       (i) pull, import, export, list, inspect, remove and prune images
  events       print the daemon's events, one JSON object a line
  version      print the client's and the daemon's version
  help         print this, or a command's usage

Global options (also accepted after the command):
  -a, --address PATH      tsruncd's socket (env TSRUNC_ADDRESS; default /run/tsrunc/tsruncd.sock)
  -n, --namespace NS      namespace (env TSRUNC_NAMESPACE; default "default")
      --fifo-dir DIR      where stdio fifos are made (env TSRUNC_FIFO_DIR; default /run/tsrunc/fifo)

Set TSRUNC_DEBUG=1 to see stack traces.
`;

export const USAGE: Record<string, string> = {
  run: `Usage: tsctl run [OPTIONS] (IMAGE | --rootfs DIR) ID [COMMAND [ARG...]]

Creates container ID, starts its task and waits for it; exits with the container's exit status
(128+N when signal N killed it). Options must come before IMAGE: what follows ID is the command.
IMAGE must have been pulled or imported (tsctl images pull); the container gets a snapshot of
it, and its Entrypoint, Cmd (replaced by COMMAND), Env, WorkingDir and User.

      --rootfs DIR          run DIR as the root filesystem instead of an IMAGE
      --platform P          the image's platform to run (os/arch[/variant]; default the host's)
      --rm                  remove the task and the container when it exits
  -d, --detach              return once the task has started (see tsctl tasks attach)
  -t, --tty                 give the process a terminal
  -i, --interactive         connect our stdin to the process
      --env K=V             set an environment variable (repeatable)
      --cwd DIR             working directory in the container
      --user USER[:GROUP]   user (names are looked up in the image's or rootfs's /etc/passwd)
      --label K=V           container label (repeatable; also a spec annotation)
      --mount SPEC          type=bind,src=/a,dst=/b,options=rbind:ro (repeatable)
      --hostname NAME       the container's hostname
      --read-only           mount the rootfs read-only
      --net NAME            none (default: loopback only), host, or a CNI network (repeatable;
                            bridge = tsruncd's default bridge)
      -p, --publish H:C[/P] publish container port C on host port H (tcp|udp; needs --net)
      --privileged          all of our capabilities, host devices, nothing masked
      --null-io             send stdio nowhere
      --log-uri URI         stdout/stderr to file:///path or binary:///logger?args
      --runtime NAME        runtime (default io.containerd.tsrunc.v2)
      --runc-binary PATH    runc-compatible binary for the shim to use
`,
  containers: `Usage: tsctl containers COMMAND   (alias: c)

  ls [--format json] [FILTER...]   list containers
  info ID                           print a container as JSON (its spec decoded)
  rm ID...                          remove containers (and their stopped tasks)
`,
  tasks: `Usage: tsctl tasks COMMAND   (alias: t)

  ls [--format json]                                 list tasks
  ps [--format json] ID                              list a task's processes
  kill [-s SIGNAL] [--all] [--exec-id X] ID          signal a task (default SIGTERM)
  exec [-t] [-i] [-d] [--cwd DIR] [--user U] [--env K=V] --exec-id X ID CMD [ARG...]
                                                     run another process in a task
  attach ID                                          connect to a task's stdio (after run -d)
  wait ID                                            wait for a task; print its exit status
  pause ID / resume ID                               freeze / thaw a task
  metrics [--format json] ID                         print a task's cgroup metrics
  rm [-f] ID                                         delete a stopped task (-f: kill it first)
`,
  images: `Usage: tsctl images COMMAND   (alias: i)

  pull [--platform P] [--plain-http] [--ca FILE] [--user U:P] [-q] [--no-unpack]
       [--max-concurrent-downloads N] REF      fetch and unpack an image (progress on a terminal)
  import [--base-name N] [--platform P] [-q] [--no-unpack] FILE
                                              import an OCI or docker-archive tar (- for stdin)
  export [--platform P] FILE REF...           write an OCI archive (- for stdout)
  ls [--format json] [-q] [FILTER...]         list images
  inspect [--platform P] REF                  print an image's record and config as JSON
  rm [--sync] REF...                          remove image records
  prune [--all]                               free blobs and snapshots nothing uses
                                              (--all: also images no container uses)
`,
  events: `Usage: tsctl events [FILTER...]

Prints every event as one JSON object a line, until interrupted. Filters use containerd's
syntax, e.g. 'topic=="/tasks/exit"' or 'namespace==default'; any one matching is enough.
`,
  version: `Usage: tsctl version

Prints tsctl's version and the daemon's (or whether it answers at all).
`,
};
