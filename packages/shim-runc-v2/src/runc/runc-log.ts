// Reading what runc says about a failure: its `--log-format json` log (one JSON object a line:
// {"level":"error","msg":"…","time":"…"}), its stderr (plain text, or logrus text lines
// `time="…" level=error msg="…"`), and for checkpoints CRIU's own log in the work path.

export interface RuncLogEntry {
  level: string;
  msg: string;
  time?: string;
  [key: string]: unknown;
}

const ERROR_LEVELS = new Set(["error", "fatal", "panic"]);

/** The entries of a runc JSON log; lines that are not runc log objects are skipped. */
export function parseRuncLog(text: string): RuncLogEntry[] {
  const entries: RuncLogEntry[] = [];
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (!trimmed.startsWith("{")) continue;
    try {
      const value: unknown = JSON.parse(trimmed);
      if (typeof value !== "object" || value === null) continue;
      const { level, msg } = value as Record<string, unknown>;
      if (typeof level === "string" && typeof msg === "string") entries.push(value as RuncLogEntry);
    } catch {
      // A torn or foreign line: not ours to interpret.
    }
  }
  return entries;
}

/** The message of the last error-level entry of a runc JSON log, trimmed; undefined if none. */
export function lastLogError(text: string): string | undefined {
  const entries = parseRuncLog(text);
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i]!;
    if (ERROR_LEVELS.has(entry.level)) {
      const msg = entry.msg.trim();
      if (msg !== "") return msg;
    }
  }
  return undefined;
}

const TEXT_LEVEL = /(?:^|\s)level=(\w+)/;
const TEXT_MSG = /(?:^|\s)msg="((?:[^"\\]|\\.)*)"|(?:^|\s)msg=(\S+)/;

/**
 * runc's message from its stderr: the last error-level logrus text line's msg if there are
 * such lines, else the whole stderr trimmed; undefined when empty.
 */
export function stderrMessage(stderr: string): string | undefined {
  const lines = stderr.split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!;
    const level = TEXT_LEVEL.exec(line)?.[1];
    if (level === undefined || !ERROR_LEVELS.has(level)) continue;
    const m = TEXT_MSG.exec(line);
    if (m === null) continue;
    if (m[1] !== undefined) {
      try {
        return (JSON.parse(`"${m[1]}"`) as string).trim();
      } catch {
        return m[1].trim();
      }
    }
    if (m[2] !== undefined) return m[2].trim();
  }
  const trimmed = stderr.trim();
  return trimmed === "" ? undefined : trimmed;
}

/** runc's "criu failed: …\nlog file: PATH" names CRIU's log; this returns PATH. */
export function criuLogPath(message: string): string | undefined {
  const m = /^log file: (.+)$/m.exec(message);
  return m?.[1]?.trim();
}

/**
 * CRIU's error lines ("(00.007384) Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds")
 * without the timestamp and source location: "vdso: Unexpected rt vDSO area bounds". The last
 * `max` distinct ones, oldest first.
 */
export function criuErrorLines(logText: string, max = 8): string[] {
  const out: string[] = [];
  for (const line of logText.split("\n")) {
    const m = /^\s*(?:\([\d.]+\)\s*)?Error\s*(?:\([^)]*\))?:?\s*(.*)$/.exec(line);
    const text = m?.[1]?.trim();
    if (text !== undefined && text !== "" && !out.includes(text)) out.push(text);
  }
  return out.slice(-max);
}
