import t from "tap";
import {
  GO_ZERO_TIME,
  isGoZeroTime,
  timestampFromDate,
  timestampFromMillis,
  timestampNow,
  timestampToDate,
  timestampToMillis,
} from "./shim.js";

t.test("from milliseconds: nanos stay in [0, 1e9), as the proto requires", async (t) => {
  t.same(timestampFromMillis(1700000000123), { seconds: 1700000000, nanos: 123000000 });
  t.same(timestampFromMillis(1700000000123.5), { seconds: 1700000000, nanos: 123500000 });
  t.same(timestampFromMillis(0), { seconds: 0, nanos: 0 });
  t.same(timestampFromMillis(-1), { seconds: -1, nanos: 999000000 });
  t.same(timestampFromDate(new Date("2024-01-02T03:04:05.678Z")), { seconds: 1704164645, nanos: 678000000 });
});

t.test("to milliseconds and Date", async (t) => {
  t.equal(timestampToMillis({ seconds: 1700000000, nanos: 123500000 }), 1700000000123.5);
  t.equal(
    timestampToDate({ seconds: 1704164645, nanos: 678000000 })?.toISOString(),
    "2024-01-02T03:04:05.678Z",
  );
  t.equal(timestampToDate(GO_ZERO_TIME), undefined, "Go's zero time means no time");
  t.equal(timestampToDate(undefined), undefined);
  t.equal(timestampToDate({ seconds: 0, nanos: 0 })?.getTime(), 0, "the epoch is a real time");
});

t.test("Go's zero time", async (t) => {
  t.same(GO_ZERO_TIME, { seconds: -62135596800, nanos: 0 });
  t.equal(new Date(GO_ZERO_TIME.seconds * 1000).toISOString(), "0001-01-01T00:00:00.000Z");
  t.ok(isGoZeroTime({ seconds: -62135596800, nanos: 0 }));
  t.notOk(isGoZeroTime({ seconds: 0, nanos: 0 }));
  t.notOk(isGoZeroTime(undefined));
  t.ok(Object.isFrozen(GO_ZERO_TIME));
});

t.test("now", async (t) => {
  const before = Date.now();
  const ts = timestampNow();
  const after = Date.now();
  t.ok(timestampToMillis(ts) >= before && timestampToMillis(ts) <= after);
});
