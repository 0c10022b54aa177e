// What a process's stdio looks like to the process code, whether plain fds (ProcessIO), a
// terminal (ConsoleIO) or a logging URI: fds to hand to runc, an optional console socket, and
// the moments of its life (runc has returned, stdin closed, process exited, shim done). The
// kinds of stdio import this file, never the other way round.

/** What containerd asked for: fifo paths (or a log URI as stdout) and whether to use a terminal. */
export interface StdioPaths {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

/** One of fd 0-2 of a process as runc gets it. */
export type ChildFd = number | "ignore";

/** Makes an anonymous pipe: [read end, write end], both close-on-exec. */
export type MakePipe = () => [number, number];

export interface StdioHandle {
  /** What runc (and so the process, unless it gets a terminal) gets as fd 0, 1 and 2. */
  readonly childStdio: [ChildFd, ChildFd, ChildFd];
  /** runc's --console-socket, for a process with a terminal. */
  readonly consoleSocket?: string;
  /** runc has created the process: drop our copies of its fds, take the console if any. */
  afterCreate(): Promise<void>;
  /** CloseIO: the process reads EOF once the client has closed its side too. */
  closeStdin(): void;
  /** ResizePty; InvalidArgument-free no-op without a terminal. */
  resize(width: number, height: number): void;
  /** The process has exited: let remaining output drain, then end the copies. */
  processExited(): void;
  /** Release everything at once (delete, or a failed create). */
  close(): void;
}
