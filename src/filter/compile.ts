/**
 * The selector language's recursive-descent parser, which compiles as it
 * parses: each rule returns a closure, so a filter is parsed once per
 * subscription and evaluating it walks no tree of nodes and allocates
 * nothing. Conditions are three-valued as in SQL and JMS: a comparison with
 * a missing (NULL) value is UNKNOWN, `NOT UNKNOWN` is UNKNOWN, and a message
 * is selected only when the whole selector is TRUE.
 *
 * @module
 */
import { FILTER_BYTES_MAX, FILTER_DEPTH_MAX } from "../config/limits.ts";
import { FilterError } from "./error.ts";
import { lex, Tok, type Token } from "./lexer.ts";
import { likeMatch, likePattern } from "./like.ts";
import {
  compare,
  type Cond,
  F,
  fieldVsLiteral,
  type Filter,
  not,
  type Selectable,
  T,
  type Truth,
  U,
  type Value,
} from "./values.ts";

export type { Filter, Selectable } from "./values.ts";

type Operand = { lit: Value; at: number } | { get: (m: Selectable) => Value; at: number };

const KEYWORDS = new Set([
  "AND",
  "OR",
  "NOT",
  "IN",
  "LIKE",
  "ESCAPE",
  "IS",
  "NULL",
  "TRUE",
  "FALSE",
  "BETWEEN",
]);

/** The message fields a selector may name; any other identifier is a header. */
function field(name: string): (m: Selectable) => Value {
  switch (name) {
    case "priority":
      return (m) => m.priority;
    case "content_type":
      return (m) => m.contentType ?? null;
    case "correlation_id":
      return (m) => m.correlationId ?? null;
    case "reply_to":
      return (m) => m.replyTo ?? null;
    default:
      return (m) => m.header(name) ?? null;
  }
}

/** UTF-8 length without encoding. */
function utf8Bytes(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c < 0xdc00 ? (i++, 4) : 3;
  }
  return n;
}

class Compiler {
  #toks: Token[];
  #k = 0;
  #depth = 0;

  constructor(toks: Token[]) {
    this.#toks = toks;
  }

  get #tok(): Token {
    return this.#toks[this.#k];
  }

  #atEnd(): boolean {
    return this.#tok.kind === Tok.END;
  }

  /** Whether the next token is keyword `kw` (case-insensitive). */
  #isKw(kw: string): boolean {
    const t = this.#tok;
    return t.kind === Tok.WORD && t.text.toUpperCase() === kw;
  }

  #eatKw(kw: string): boolean {
    if (!this.#isKw(kw)) return false;
    this.#k++;
    return true;
  }

  #isOp(op: string): boolean {
    const t = this.#tok;
    return t.kind === Tok.OP && t.text === op;
  }

  #expectOp(op: string): void {
    if (!this.#isOp(op)) throw this.#unexpected(`'${op}'`);
    this.#k++;
  }

  #unexpected(wanted: string): FilterError {
    const t = this.#tok;
    const got = t.kind === Tok.END ? "the end" : JSON.stringify(t.text);
    return new FilterError(`expected ${wanted}, got ${got}`, t.at);
  }

  #enter(): void {
    if (++this.#depth > FILTER_DEPTH_MAX) {
      throw new FilterError(`nested deeper than ${FILTER_DEPTH_MAX}`, this.#tok.at);
    }
  }

  selector(): Cond {
    if (this.#tok.kind === Tok.END) throw this.#unexpected("a condition");
    const c = this.#or();
    if (!this.#atEnd()) throw this.#unexpected("AND, OR or the end");
    return c;
  }

  #or(): Cond {
    const parts = [this.#and()];
    while (this.#eatKw("OR")) parts.push(this.#and());
    if (parts.length === 1) return parts[0];
    return (m) => {
      let r: Truth = F;
      for (let i = 0; i < parts.length; i++) {
        const v = parts[i](m);
        if (v === T) return T;
        if (v === U) r = U;
      }
      return r;
    };
  }

  #and(): Cond {
    const parts = [this.#not()];
    while (this.#eatKw("AND")) parts.push(this.#not());
    if (parts.length === 1) return parts[0];
    return (m) => {
      let r: Truth = T;
      for (let i = 0; i < parts.length; i++) {
        const v = parts[i](m);
        if (v === F) return F;
        if (v === U) r = U;
      }
      return r;
    };
  }

  #not(): Cond {
    if (!this.#eatKw("NOT")) return this.#primary();
    this.#enter();
    const c = this.#not();
    this.#depth--;
    return (m) => not(c(m));
  }

  #primary(): Cond {
    if (this.#isOp("(")) {
      this.#k++;
      this.#enter();
      const c = this.#or();
      this.#depth--;
      this.#expectOp(")");
      return c;
    }
    const left = this.#operand();
    const t = this.#tok;
    if (t.kind === Tok.OP && t.text !== "(" && t.text !== ")" && t.text !== ",") {
      this.#k++;
      return comparison(left, t.text, this.#operand());
    }
    const negated = this.#eatKw("NOT");
    if (this.#eatKw("IN")) return this.#in(identifier(left, "IN"), negated);
    if (this.#eatKw("LIKE")) return this.#like(identifier(left, "LIKE"), negated);
    if (this.#eatKw("BETWEEN")) return this.#between(left, negated);
    if (negated) throw this.#unexpected("IN, LIKE or BETWEEN after NOT");
    if (this.#eatKw("IS")) {
      const isNot = this.#eatKw("NOT");
      if (!this.#eatKw("NULL")) throw this.#unexpected("NULL");
      const get = identifier(left, "IS NULL");
      return isNot ? (m) => (get(m) === null ? F : T) : (m) => (get(m) === null ? T : F);
    }
    // A bare operand is a condition when it is a boolean: TRUE, FALSE, or a header reading true/false.
    if ("lit" in left) {
      if (typeof left.lit !== "boolean") {
        throw new FilterError("a value is not a condition: compare it", left.at);
      }
      const v: Truth = left.lit ? T : F;
      return () => v;
    }
    const get = left.get;
    return (m) => compare(get(m), true, "=");
  }

  #operand(): Operand {
    const t = this.#tok;
    if (t.kind === Tok.STRING) {
      this.#k++;
      return { lit: t.text, at: t.at };
    }
    if (t.kind === Tok.NUMBER) {
      this.#k++;
      const n = Number(t.text);
      if (!Number.isFinite(n)) throw new FilterError("number out of range", t.at);
      return { lit: n, at: t.at };
    }
    if (t.kind === Tok.WORD) {
      const up = t.text.toUpperCase();
      if (up === "TRUE" || up === "FALSE") {
        this.#k++;
        return { lit: up === "TRUE", at: t.at };
      }
      if (up === "NULL") throw new FilterError("compare with NULL through IS NULL", t.at);
      if (!KEYWORDS.has(up)) {
        this.#k++;
        return { get: field(t.text), at: t.at };
      }
    }
    throw this.#unexpected("an identifier or a literal");
  }

  #literal(): Value {
    const t = this.#tok;
    const o = this.#operand();
    if (!("lit" in o)) throw new FilterError("expected a literal", t.at);
    return o.lit;
  }

  #in(get: (m: Selectable) => Value, negated: boolean): Cond {
    this.#expectOp("(");
    const items: Value[] = [this.#literal()];
    while (this.#isOp(",")) {
      this.#k++;
      items.push(this.#literal());
    }
    this.#expectOp(")");
    const hit: Truth = negated ? F : T;
    const miss: Truth = negated ? T : F;
    return (m) => {
      const v = get(m);
      if (v === null) return U;
      let r: Truth = miss;
      for (let i = 0; i < items.length; i++) {
        const c = compare(v, items[i], "=");
        if (c === T) return hit;
        if (c === U) r = U;
      }
      return r;
    };
  }

  #like(get: (m: Selectable) => Value, negated: boolean): Cond {
    const t = this.#tok;
    if (t.kind !== Tok.STRING) throw this.#unexpected("a pattern string");
    this.#k++;
    let escape: string | undefined;
    if (this.#eatKw("ESCAPE")) {
      const e = this.#tok;
      if (e.kind !== Tok.STRING) throw this.#unexpected("an escape string");
      this.#k++;
      escape = e.text;
    }
    const parts = likePattern(t.text, escape, t.at);
    return (m) => {
      const v = get(m);
      if (typeof v !== "string") return U;
      return likeMatch(parts, v) !== negated ? T : F;
    };
  }

  #between(left: Operand, negated: boolean): Cond {
    const lo = comparison(left, ">=", this.#operand());
    if (!this.#eatKw("AND")) throw this.#unexpected("AND");
    const hi = comparison(left, "<=", this.#operand());
    return (m) => {
      const a = lo(m);
      const r: Truth = a === F ? F : (a === U ? (hi(m) === F ? F : U) : hi(m));
      return negated ? not(r) : r;
    };
  }
}

function identifier(o: Operand, what: string): (m: Selectable) => Value {
  if ("lit" in o) throw new FilterError(`${what} needs an identifier on its left`, o.at);
  return o.get;
}

/** A comparison, specialised when one side is a literal (the common case). */
function comparison(a: Operand, op: string, b: Operand): Cond {
  if ("lit" in a) {
    const lit = a.lit;
    if ("lit" in b) {
      const r = compare(lit, b.lit, op);
      return () => r;
    }
    const get = b.get;
    return (m) => compare(lit, get(m), op);
  }
  const ga = a.get;
  if ("lit" in b) return fieldVsLiteral(ga, op, b.lit);
  const gb = b.get;
  return (m) => compare(ga(m), gb(m), op);
}

/**
 * Compiles a selector once; the result is called per message. Throws
 * `FilterError` (a `SyntaxError` saying where) on bad syntax or a selector
 * over `FILTER_BYTES_MAX` bytes or nested deeper than `FILTER_DEPTH_MAX`.
 *
 * @example
 * ```ts
 * import { compileFilter } from "./compile.ts";
 * const f = compileFilter("region = 'eu' AND priority > 5");
 * const header = (name: string) => (name === "region" ? "eu" : undefined);
 * const base = { contentType: undefined, correlationId: undefined, replyTo: undefined, header };
 * console.assert(f({ ...base, priority: 7 }) && !f({ ...base, priority: 1 }));
 * ```
 */
export function compileFilter(src: string): Filter {
  if (utf8Bytes(src) > FILTER_BYTES_MAX) {
    throw new FilterError(`longer than ${FILTER_BYTES_MAX} bytes`, 0);
  }
  const cond = new Compiler(lex(src)).selector();
  return (m) => cond(m) === T;
}
