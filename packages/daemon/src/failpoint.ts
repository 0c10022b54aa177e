// Crash points for the crash-consistency tests: with TSRUNC_CRASH_AT=<name> in its environment
// the daemon SIGKILLs itself when it reaches that point, so a test can stop it between any two
// steps of a create or delete and check what the next boot makes of it. Unset in production:
// one environment lookup per point, nothing else.
const crashAt = process.env.TSRUNC_CRASH_AT;

export function failpoint(name: string): void {
  if (crashAt !== undefined && crashAt === name) process.kill(process.pid, "SIGKILL");
}
