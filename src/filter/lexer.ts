/**
 * The tokens of the selector language (docs/PROTOCOL.md, "Filters"). A token
 * keeps its offset in the source, so every syntax error can say where.
 *
 * @module
 */
import { FilterError } from "./error.ts";

/** Kinds of token. Keywords are `WORD` tokens, matched case-insensitively by the parser. */
export const Tok = {
  WORD: 0,
  STRING: 1,
  NUMBER: 2,
  OP: 3,
  END: 4,
} as const;
export type Tok = typeof Tok[keyof typeof Tok];

/** One token: its kind, its text (a string literal unquoted, a number as written), where it starts. */
export interface Token {
  kind: Tok;
  text: string;
  at: number;
}

const OPS2 = new Set(["<>", "<=", ">="]);
const OPS1 = new Set(["=", "<", ">", "(", ")", ","]);

function isIdentStart(c: string): boolean {
  return (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || c === "_" || c === "$";
}

/** Header keys may hold `-` and `.` (src/protocol/headers.ts), so identifiers may too after the first character. */
function isIdentPart(c: string): boolean {
  return isIdentStart(c) || (c >= "0" && c <= "9") || c === "-" || c === ".";
}

function isDigit(c: string): boolean {
  return c >= "0" && c <= "9";
}

const NUMBER = /-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/y;

/** Splits `src` into tokens, ending with one `END`; throws `FilterError` at the first bad character. */
export function lex(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const n = src.length;
  while (i < n) {
    const c = src[i];
    if (c === " " || c === "\t" || c === "\r" || c === "\n") {
      i++;
      continue;
    }
    const at = i;
    if (isIdentStart(c)) {
      while (i < n && isIdentPart(src[i])) i++;
      out.push({ kind: Tok.WORD, text: src.slice(at, i), at });
    } else if (c === "'") {
      let text = "";
      i++;
      for (;;) {
        if (i >= n) throw new FilterError("unterminated string", at);
        if (src[i] === "'") {
          if (src[i + 1] === "'") {
            text += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        text += src[i++];
      }
      out.push({ kind: Tok.STRING, text, at });
    } else if (isDigit(c) || ((c === "-" || c === ".") && i + 1 < n && /[0-9.]/.test(src[i + 1]))) {
      NUMBER.lastIndex = i;
      const m = NUMBER.exec(src);
      if (m === null) throw new FilterError(`bad number`, at);
      i += m[0].length;
      if (i < n && isIdentPart(src[i])) throw new FilterError("bad number", at);
      out.push({ kind: Tok.NUMBER, text: m[0], at });
    } else if (OPS2.has(src.slice(i, i + 2))) {
      out.push({ kind: Tok.OP, text: src.slice(i, i + 2), at });
      i += 2;
    } else if (OPS1.has(c)) {
      out.push({ kind: Tok.OP, text: c, at });
      i++;
    } else {
      throw new FilterError(`unexpected character ${JSON.stringify(c)}`, at);
    }
  }
  out.push({ kind: Tok.END, text: "", at: n });
  return out;
}
