// tsctl's argument parser. node:util's parseArgs cannot stop at a positional, and `run` needs
// exactly that: as with ctr (urfave/cli with SkipArgReorder), everything after the container's
// ID is the container's command, its dashes included (`tsctl run --rootfs r id ls -l`).
//
// Accepted: --name value, --name=value, -x value, -xvalue, clusters of short booleans (-dt),
// --bool / --bool=true|false, repeatable options (collected in order), and "--" to end options.

export class UsageError extends Error {
  override readonly name = "UsageError";
}

export interface OptionSpec {
  /** Long name without dashes, e.g. "env". */
  name: string;
  /** One letter, e.g. "e". */
  short?: string;
  type: "boolean" | "string";
  /** Repeatable: every value is kept, in order. */
  multiple?: boolean;
}

export type OptionValue = string | boolean | string[];

export interface Parsed {
  values: Record<string, OptionValue | undefined>;
  positionals: string[];
}

export interface ParseOptions {
  /**
   * After this many positionals every remaining argument is positional. A function is asked
   * each time a positional is met, with the options seen so far (run's count depends on
   * whether --rootfs was given).
   */
  stopAfter?: number | ((values: Parsed["values"]) => number);
}

export function parseArgs(
  argv: readonly string[],
  specs: readonly OptionSpec[],
  o: ParseOptions = {},
): Parsed {
  const long = new Map(specs.map((s) => [s.name, s]));
  const short = new Map(specs.filter((s) => s.short !== undefined).map((s) => [s.short!, s]));
  const values: Parsed["values"] = Object.create(null);
  const positionals: string[] = [];

  const set = (spec: OptionSpec, v: string | boolean) => {
    if (spec.multiple) {
      const list = (values[spec.name] as string[] | undefined) ?? [];
      list.push(String(v));
      values[spec.name] = list;
    } else {
      values[spec.name] = v;
    }
  };
  const stopAt = () => (typeof o.stopAfter === "function" ? o.stopAfter(values) : o.stopAfter);

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      const spec = long.get(name);
      if (spec === undefined) throw new UsageError(`unknown option --${name}`);
      if (spec.type === "boolean") {
        if (eq < 0) set(spec, true);
        else {
          const v = arg.slice(eq + 1);
          if (v !== "true" && v !== "false") throw new UsageError(`option --${name} takes no value`);
          set(spec, v === "true");
        }
      } else if (eq >= 0) {
        set(spec, arg.slice(eq + 1));
      } else {
        if (i + 1 >= argv.length) throw new UsageError(`option --${name} needs a value`);
        set(spec, argv[++i]!);
      }
      continue;
    }
    if (arg.startsWith("-") && arg.length > 1) {
      for (let j = 1; j < arg.length; j++) {
        const c = arg[j]!;
        const spec = short.get(c);
        if (spec === undefined) throw new UsageError(`unknown option -${c}`);
        if (spec.type === "boolean") {
          set(spec, true);
          continue;
        }
        let v = arg.slice(j + 1);
        if (v.startsWith("=")) v = v.slice(1);
        if (v === "") {
          if (i + 1 >= argv.length) throw new UsageError(`option -${c} needs a value`);
          v = argv[++i]!;
        }
        set(spec, v);
        break;
      }
      continue;
    }
    positionals.push(arg);
    const limit = stopAt();
    if (limit !== undefined && positionals.length >= limit) {
      positionals.push(...argv.slice(i + 1));
      break;
    }
  }
  return { values, positionals };
}

export function str(p: Parsed, name: string): string | undefined {
  const v = p.values[name];
  return typeof v === "string" ? v : undefined;
}

export function bool(p: Parsed, name: string): boolean {
  return p.values[name] === true;
}

export function list(p: Parsed, name: string): string[] {
  const v = p.values[name];
  return Array.isArray(v) ? v : [];
}
