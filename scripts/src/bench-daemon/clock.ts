// One clock for everything the bench puts on a timeline: epoch milliseconds with sub-ms
// precision, comparable with the `time` (Date.now()) of tsruncd's pino log lines.

export const now = (): number => performance.timeOrigin + performance.now();
