/**
 * SQL `LIKE` matching by hand: `%` any run, `_` one character, an optional
 * escape character. A regular expression built from a pattern such as
 * `%a%a%a%b` backtracks exponentially on a long header value; this loop keeps
 * only the last `%` to retry from, so it is O(pattern × value) at worst.
 *
 * @module
 */
import { FilterError } from "./error.ts";

/** One element of a compiled pattern: a literal character, `_` (ONE) or `%` (ANY). */
const ONE = 0;
const ANY = 1;
type Part = string | typeof ONE | typeof ANY;

/** Compiles `pattern` (with `escape`, one character, if given); `at` places errors. */
export function likePattern(pattern: string, escape: string | undefined, at: number): Part[] {
  if (escape !== undefined && [...escape].length !== 1) {
    throw new FilterError("ESCAPE takes exactly one character", at);
  }
  const parts: Part[] = [];
  const chars = [...pattern];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i];
    if (c === escape) {
      const next = chars[++i];
      if (next === undefined) {
        throw new FilterError("LIKE pattern ends with its escape character", at);
      }
      parts.push(next);
    } else if (c === "%") {
      if (parts[parts.length - 1] !== ANY) parts.push(ANY);
    } else if (c === "_") parts.push(ONE);
    else parts.push(c);
  }
  return parts;
}

/** Whether `value` matches the compiled pattern (by code point). */
export function likeMatch(parts: Part[], value: string): boolean {
  const v = [...value];
  let p = 0;
  let i = 0;
  let starP = -1;
  let starI = 0;
  while (i < v.length) {
    const part = parts[p];
    if (p < parts.length && part !== ANY && (part === ONE || part === v[i])) {
      p++;
      i++;
    } else if (p < parts.length && part === ANY) {
      starP = p++;
      starI = i;
    } else if (starP >= 0) {
      p = starP + 1;
      i = ++starI;
    } else return false;
  }
  while (p < parts.length && parts[p] === ANY) p++;
  return p === parts.length;
}
