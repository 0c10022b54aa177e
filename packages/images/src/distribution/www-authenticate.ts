// Parsing of WWW-Authenticate headers (RFC 7235): one or more challenges, each a scheme and
// comma-separated auth-params, e.g.
//   Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"
// Several challenges may share one header line (Node joins repeated headers with ", ").

export interface Challenge {
  /** Lower-cased scheme: "bearer", "basic", … */
  scheme: string;
  /** Lower-cased parameter names → values (quotes and escapes removed). */
  params: Record<string, string>;
}

const tokenChar = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/** Parses every challenge in a header value (or several values); malformed tails are dropped. */
export function parseWwwAuthenticate(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const values = Array.isArray(header) ? header : [header];
  const out: Challenge[] = [];
  for (const value of values) out.push(...parseOne(value));
  return out;
}

function parseOne(s: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const n = s.length;
  const skipSpace = () => {
    while (i < n && (s[i] === " " || s[i] === "\t")) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < n && tokenChar.test(s[i]!)) i++;
    return s.slice(start, i);
  };
  let current: Challenge | undefined;
  while (i < n) {
    skipSpace();
    if (s[i] === ",") {
      i++;
      continue;
    }
    const token = readToken();
    if (token.length === 0) {
      // Not something we can read: stop here rather than guess.
      break;
    }
    skipSpace();
    if (s[i] === "=" && current !== undefined) {
      // auth-param (or a token68 ending in "=", which we don't need)
      i++;
      skipSpace();
      let value: string;
      if (s[i] === '"') {
        i++;
        value = "";
        while (i < n && s[i] !== '"') {
          if (s[i] === "\\" && i + 1 < n) i++;
          value += s[i];
          i++;
        }
        i++; // closing quote
      } else {
        value = readToken();
      }
      current.params[token.toLowerCase()] = value;
      continue;
    }
    // Otherwise the token is a new challenge's scheme.
    current = { scheme: token.toLowerCase(), params: {} };
    out.push(current);
  }
  return out;
}
