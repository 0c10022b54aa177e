// containerd's filter language (pkg/filters), as its List calls accept it, e.g.
//   labels."io.example/x"==a,image~=^docker\.io/   (comma = AND)
// Several filter strings are ORed. The grammar, the scanner's quirks and the error messages
// follow containerd's parser, so that a filter means here what it means to ctr:
//
//   selectors := selector ("," selector)*
//   selector  := fieldpath (operator value)?       -- no operator: the field is present
//   fieldpath := field ("." field)*
//   field     := quoted | [A-Za-z0-9_-]+
//   operator  := "==" | "!=" | "~="
//   value     := quoted | [^\s,]+                  -- "/re/" and "|re|" quote ~= values too
//   quoted    := Go string syntax ("\n", "\"", "\x41", "\u00e9", …)
//
// Matching happens in JS on loaded records (see README: why not SQL). Deviations: a bad
// regexp is an InvalidArgument at parse time (containerd matches nothing); regexps are
// JavaScript's (a leading (?i)/(?m)/(?s) is honoured), so avoid RE2-only syntax. They run on
// V8's linear-time engine, as Go's RE2 runs in linear time: a filter (any client's, matched on
// every List and every event published) must not be able to stall the daemon with a pattern
// that backtracks exponentially. That engine has no backreferences or lookarounds (RE2 has
// none either: InvalidArgument), no counted repetition above a few hundred, and sees UTF-16
// code units (`.` matches half of an astral character).

import { setFlagsFromString } from "node:v8";
import { Code, TtrpcError } from "@tsrunc/ttrpc";

// The `l` (linear) RegExp flag; set before any pattern is compiled with it.
setFlagsFromString("--enable-experimental-regexp-engine");

import type { ContainerRecord } from "./records.js";

/** Returns the value at a field path, or undefined when the field is absent. */
export type FieldGetter = (path: readonly string[]) => string | undefined;
export type Filter = (fields: FieldGetter) => boolean;

const matchAll: Filter = () => true;

/** Parses several filter strings into one filter that matches when any of them does. */
export function parseFilters(filters: readonly string[]): Filter {
  if (filters.length === 0) return matchAll;
  const parsed = filters.map(parseFilter);
  return (fields) => parsed.some((f) => f(fields));
}

/** Parses one filter string (comma-separated selectors, all of which must match). */
export function parseFilter(input: string): Filter {
  if (input === "") return matchAll;
  const selectors = new Parser(input).selectors();
  return (fields) => selectors.every((s) => s(fields));
}

/** containerd's adaptor for a container: id, image, runtime.name and labels.<key>. */
export function containerFields(c: ContainerRecord): FieldGetter {
  return (path) => {
    switch (path[0]) {
      case "id":
        return present(c.id);
      case "image":
        return present(c.image);
      case "runtime":
        return path[1] === "name" ? present(c.runtime.name) : undefined;
      case "labels":
        return mapField(path.slice(1), c.labels);
      default:
        return undefined;
    }
  };
}

/** A map field, as containerd's checkMap: the rest of the path joined by "." is the key. */
export function mapField(path: readonly string[], map: Record<string, string>): string | undefined {
  const key = path.join(".");
  return Object.hasOwn(map, key) ? map[key] : undefined;
}

function present(value: string): string | undefined {
  return value.length > 0 ? value : undefined;
}

// ---- scanner ----------------------------------------------------------------------------------

const EOF = -1;
const ILLEGAL = -2;

enum Tok {
  EOF = 0,
  Quoted = 1,
  Value = 2,
  Field = 3,
  Separator = 4,
  Operator = 5,
  Illegal = 6,
  Other = 7,
}

const spaceRe = /\p{White_Space}/u;
const valueRe = /[\p{L}\p{M}\p{N}\p{P}\p{S}]/u;

const isSpace = (r: number) => r >= 0 && spaceRe.test(String.fromCodePoint(r));
const isQuote = (r: number) => r === 0x2f /* / */ || r === 0x7c /* | */ || r === 0x22; /* " */
const isSeparator = (r: number) => r === 0x2c /* , */ || r === 0x2e; /* . */
const isOperator = (r: number) => r === 0x3d /* = */ || r === 0x21 /* ! */ || r === 0x7e; /* ~ */
const isField = (r: number) =>
  r === 0x2d ||
  r === 0x5f ||
  (r >= 0x30 && r <= 0x39) ||
  (r >= 0x41 && r <= 0x5a) ||
  (r >= 0x61 && r <= 0x7a);
const isValue = (r: number) => r >= 0 && r !== 0x2c && !isSpace(r) && valueRe.test(String.fromCodePoint(r));

function digitVal(r: number): number {
  if (r >= 0x30 && r <= 0x39) return r - 0x30;
  if (r >= 0x61 && r <= 0x66) return r - 0x61 + 10;
  if (r >= 0x41 && r <= 0x46) return r - 0x41 + 10;
  return 16;
}

/** containerd's scanner: positions are UTF-16 offsets here (bytes in Go). */
class Scanner {
  pos = 0; // start of the current code point
  ppos = 0; // end of the current code point
  value = false; // the next token is a value (we just read an operator)
  err = "";

  constructor(readonly input: string) {}

  next(): number {
    if (this.pos >= this.input.length) return EOF;
    this.pos = this.ppos;
    if (this.ppos >= this.input.length) return EOF;
    const r = this.input.codePointAt(this.ppos)!;
    this.ppos += r > 0xffff ? 2 : 1;
    if (r >= 0xd800 && r <= 0xdfff) {
      this.error("rune error");
      return ILLEGAL;
    }
    if (r === 0) {
      this.error("unexpected null");
      return ILLEGAL;
    }
    return r;
  }

  peek(): number {
    const { pos, ppos } = this;
    const r = this.next();
    this.pos = pos;
    this.ppos = ppos;
    return r;
  }

  scan(): [pos: number, tok: Tok, text: string] {
    let r = this.next();
    let pos = this.pos;
    for (;;) {
      if (r === EOF || r === ILLEGAL) break;
      if (isQuote(r)) {
        const ok = this.scanQuoted(r);
        return [pos, ok ? Tok.Quoted : Tok.Illegal, this.input.slice(pos, this.ppos)];
      }
      if (isSeparator(r)) {
        this.value = false;
        return [pos, Tok.Separator, this.input.slice(pos, this.ppos)];
      }
      if (isOperator(r)) {
        while (isOperator(this.peek())) this.next();
        this.value = true;
        return [pos, Tok.Operator, this.input.slice(pos, this.ppos)];
      }
      if (isSpace(r)) {
        r = this.next();
        pos = this.pos;
        continue;
      }
      if (this.value) {
        while (isValue(this.peek())) this.next();
        this.value = false;
        return [pos, Tok.Value, this.input.slice(pos, this.ppos)];
      }
      if (isField(r)) {
        while (isField(this.peek())) this.next();
        return [pos, Tok.Field, this.input.slice(pos, this.ppos)];
      }
      break;
    }
    return [this.pos, r === EOF ? Tok.EOF : r === ILLEGAL ? Tok.Illegal : Tok.Other, ""];
  }

  private scanQuoted(quote: number): boolean {
    let illegal = false;
    let r = this.next();
    while (r !== quote) {
      if (r === 0x0a || r < 0) {
        this.error("quoted literal not terminated");
        return false;
      }
      if (r === 0x5c /* \ */) {
        let legal: boolean;
        [r, legal] = this.scanEscape(quote);
        if (!legal) illegal = true;
      } else {
        r = this.next();
      }
    }
    return !illegal;
  }

  private scanEscape(quote: number): [number, boolean] {
    const r = this.next();
    switch (r) {
      case 0x61: // a b f n r t v \ and the quote itself
      case 0x62:
      case 0x66:
      case 0x6e:
      case 0x72:
      case 0x74:
      case 0x76:
      case 0x5c:
      case quote:
        return [this.next(), true];
      case 0x78: // x
        return this.scanDigits(this.next(), 16, 2);
      case 0x75: // u
        return this.scanDigits(this.next(), 16, 4);
      case 0x55: // U
        return this.scanDigits(this.next(), 16, 8);
      default:
        if (r >= 0x30 && r <= 0x37) return this.scanDigits(r, 8, 3);
        this.error("illegal escape sequence");
        return [r, false];
    }
  }

  private scanDigits(r: number, base: number, n: number): [number, boolean] {
    while (n > 0 && digitVal(r) < base) {
      r = this.next();
      n--;
    }
    if (n > 0) {
      this.error("illegal numeric escape sequence");
      return [r, false];
    }
    return [r, true];
  }

  private error(msg: string): void {
    if (this.err === "") this.err = msg;
  }
}

// ---- parser -----------------------------------------------------------------------------------

type Operator = "==" | "!=" | "~=";

class Parser {
  private readonly s: Scanner;

  constructor(private readonly input: string) {
    this.s = new Scanner(input);
  }

  selectors(): Filter[] {
    const out = [this.selector()];
    for (;;) {
      const r = this.s.peek();
      if (r === EOF) return out;
      if (r !== 0x2c) {
        const shown = r < 0 ? "\ufffd" : String.fromCodePoint(r);
        throw this.error(this.s.ppos, `unexpected input: ${shown}`);
      }
      const [pos, tok] = this.s.scan();
      if (tok !== Tok.Separator) throw this.error(pos, "expected a separator");
      out.push(this.selector());
    }
  }

  private selector(): Filter {
    const path = this.fieldpath();
    const r = this.s.peek();
    if (r === 0x2c || r === EOF) return (fields) => fields(path) !== undefined;
    const op = this.operator();
    const value = this.value(op === "~=");
    switch (op) {
      case "==":
        return (fields) => fields(path) === value;
      case "!=":
        return (fields) => (fields(path) ?? "") !== value;
      case "~=": {
        const re = compileRegexp(value);
        return (fields) => re.test(fields(path) ?? "");
      }
    }
  }

  private fieldpath(): string[] {
    const path = [this.field()];
    while (this.s.peek() === 0x2e /* . */) {
      const [pos, tok] = this.s.scan();
      if (tok !== Tok.Separator) throw this.error(pos, "expected a field separator (`.`)");
      path.push(this.field());
    }
    return path;
  }

  private field(): string {
    const [pos, tok, text] = this.s.scan();
    switch (tok) {
      case Tok.Field:
        return text;
      case Tok.Quoted:
        return this.unquote(pos, text, false);
      case Tok.Illegal:
        throw this.error(pos, this.s.err);
      default:
        throw this.error(pos, "expected field or quoted");
    }
  }

  private operator(): Operator {
    const [pos, tok, text] = this.s.scan();
    switch (tok) {
      case Tok.Operator:
        if (text === "==" || text === "!=" || text === "~=") return text;
        throw this.error(pos, `unsupported operator ${JSON.stringify(text)}`);
      case Tok.Illegal:
        throw this.error(pos, this.s.err);
      default:
        throw this.error(pos, 'expected an operator ("=="|"!="|"~=")');
    }
  }

  private value(allowAltQuotes: boolean): string {
    const [pos, tok, text] = this.s.scan();
    switch (tok) {
      case Tok.Value:
      case Tok.Field:
        return text;
      case Tok.Quoted:
        return this.unquote(pos, text, allowAltQuotes);
      case Tok.Illegal:
        throw this.error(pos, this.s.err);
      default:
        throw this.error(pos, "expected value or quoted");
    }
  }

  private unquote(pos: number, text: string, allowAlts: boolean): string {
    if (!allowAlts && text[0] !== '"') throw this.error(pos, "invalid quote encountered");
    const s = unquote(text);
    if (s === undefined) throw this.error(pos, "unquoting failed: quote syntax error");
    return s;
  }

  /** containerd's message: the input with the offending character marked, then the reason. */
  private error(pos: number, msg: string): TtrpcError {
    const input = this.input;
    let where: string;
    if (pos < input.length) {
      const end = pos + ((input.codePointAt(pos) ?? 0) > 0xffff ? 2 : 1);
      where = `${input.slice(0, pos)} >|${input.slice(pos, end)}|< ${input.slice(end)}`;
    } else {
      where = input;
    }
    return new TtrpcError(Code.InvalidArgument, `filters: parse error: [${where}]: ${msg}`);
  }
}

const simpleEscapes: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, "\\": 0x5c };

/**
 * Go's strconv.Unquote as containerd extends it ('/' and '|' quote like '"'). Returns undefined
 * on a syntax error. \x and octal escapes are bytes, as in Go; the result is decoded as UTF-8.
 */
function unquote(text: string): string | undefined {
  const quote = text[0];
  if (text.length < 2 || quote === undefined || text[text.length - 1] !== quote) return undefined;
  const s = text.slice(1, -1);
  if (s.includes("\n")) return undefined;
  if (!s.includes("\\") && !s.includes(quote)) return s;

  const bytes: number[] = [];
  const encoder = new TextEncoder();
  const rune = (r: number) => {
    if (r < 0x80) bytes.push(r);
    else bytes.push(...encoder.encode(String.fromCodePoint(r >= 0xd800 && r <= 0xdfff ? 0xfffd : r)));
  };
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === quote) return undefined;
    if (c !== "\\") {
      const r = s.codePointAt(i)!;
      rune(r);
      i += r > 0xffff ? 2 : 1;
      continue;
    }
    const e = s[i + 1];
    if (e === undefined) return undefined;
    i += 2;
    if (Object.hasOwn(simpleEscapes, e)) {
      bytes.push(simpleEscapes[e]!);
    } else if (e === "x" || e === "u" || e === "U") {
      const n = e === "x" ? 2 : e === "u" ? 4 : 8;
      const digits = s.slice(i, i + n);
      if (digits.length < n || !/^[0-9A-Fa-f]+$/.test(digits)) return undefined;
      const v = Number.parseInt(digits, 16);
      i += n;
      if (e === "x") bytes.push(v);
      else if (v > 0x10ffff) return undefined;
      else rune(v);
    } else if (e >= "0" && e <= "7") {
      const digits = s.slice(i - 1, i + 2);
      if (!/^[0-7]{3}$/.test(digits)) return undefined;
      const v = Number.parseInt(digits, 8);
      if (v > 255) return undefined;
      bytes.push(v);
      i += 2;
    } else if (e === quote && (e === '"' || e === "/" || e === "|")) {
      bytes.push(e.charCodeAt(0));
    } else {
      return undefined;
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/**
 * A ~= value as a linear-time JS RegExp; Go's leading inline flags (?i), (?m), (?s) become JS
 * flags, (?i) by folding case into the pattern (the linear engine takes no `i` flag).
 */
function compileRegexp(source: string): RegExp {
  let flags = "";
  const inline = /^\(\?([ims]+)\)/.exec(source);
  if (inline) {
    flags = [...new Set(inline[1])].join("");
    source = source.slice(inline[0].length);
  }
  const pattern = flags.includes("i") ? foldCase(source) : source;
  try {
    return new RegExp(pattern, `${flags.replace("i", "")}l`);
  } catch (err) {
    throw new TtrpcError(
      Code.InvalidArgument,
      `filters: invalid regexp ${JSON.stringify(source)}: ${(err as Error).message}`,
    );
  }
}

/** The other case of a character, when it has exactly one. */
function otherCase(c: string): string | undefined {
  const lo = c.toLowerCase();
  const up = c.toUpperCase();
  if (lo === up || lo.length !== 1 || up.length !== 1) return undefined;
  return c === lo ? up : lo;
}

/**
 * A pattern that matches case-insensitively without the `i` flag: each letter becomes a class of
 * both cases (outside a class) or gains its other case (inside one, ranges of letters too).
 * Escapes and group names are copied as they are.
 */
function foldCase(p: string): string {
  let out = "";
  let inClass = false;
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === "\\") {
      out += p.slice(i, i + 2);
      i++;
    } else if (!inClass && p.startsWith("(?<", i) && p[i + 3] !== "=" && p[i + 3] !== "!") {
      const end = p.indexOf(">", i);
      if (end < 0) return p; // not a group name: the compiler reports it
      out += p.slice(i, end + 1);
      i = end;
    } else if (c === "[" && !inClass) {
      inClass = true;
      out += c;
      if (p[i + 1] === "^") out += p[++i];
    } else if (c === "]" && inClass) {
      inClass = false;
      out += c;
    } else if (inClass && p[i + 1] === "-" && p[i + 2] !== undefined && p[i + 2] !== "]") {
      const hi = p[i + 2]!;
      out += `${c}-${hi}`;
      const oc = otherCase(c);
      const oh = otherCase(hi);
      if (/[a-zA-Z]/.test(c) && /[a-zA-Z]/.test(hi) && oc && oh && oc <= oh) out += `${oc}-${oh}`;
      i += 2;
    } else {
      const o = otherCase(c);
      out += o === undefined ? c : inClass ? `${c}${o}` : `[${c}${o}]`;
    }
  }
  return out;
}
