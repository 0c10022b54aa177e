// The type of tap's test object (with its plugins' assertions), for helpers that take `t`.
import type t from "tap";

export type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];
