/**
 * The selector language as tables: what selects what (grammar, precedence,
 * NULL logic, coercion, LIKE), what is a syntax error and where, the limits,
 * and a property test of the three-valued logic against a reference.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { FILTER_BYTES_MAX, FILTER_DEPTH_MAX } from "../../src/config/mod.ts";
import { compileFilter, FilterError, type Selectable } from "../../src/filter/mod.ts";
import { decodeHeaders, encodeHeaders, headerMap } from "../../src/protocol/mod.ts";

/** A message with these headers and fields (priority 4 unless given). */
function msg(headers: Record<string, string> = {}, fields: Partial<Selectable> = {}): Selectable {
  let parsed = 0;
  return {
    priority: 4,
    contentType: "application/json",
    correlationId: undefined,
    replyTo: undefined,
    ...fields,
    header(name: string) {
      parsed++;
      return Object.hasOwn(headers, name) ? headers[name] : undefined;
    },
    get parsed() {
      return parsed;
    },
  } as Selectable;
}

const M = msg({
  region: "eu",
  amount: "120.5",
  count: "7",
  flag: "true",
  "x-trace.id": "a_b%c",
  name: "O'Brien",
  word: "hello",
});

/** [selector, selected?] against M. */
const SELECTS: [string, boolean][] = [
  // comparisons
  ["region = 'eu'", true],
  ["region = 'us'", false],
  ["region <> 'us'", true],
  ["'eu' = region", true],
  ["amount > 100", true],
  ["amount >= 120.5", true],
  ["amount < 120.5", false],
  ["amount <= 1.205e2", true],
  ["count = 7", true],
  ["count = 7.0", true],
  ["count > -1", true],
  ["priority = 4", true],
  ["priority > 4", false],
  ["content_type = 'application/json'", true],
  ["name = 'O''Brien'", true],
  ["word > 'abc'", true],
  ["word < 'abc'", false],
  ["region = count", false],
  ["x-trace.id = 'a_b%c'", true],
  // booleans
  ["flag", true],
  ["flag = TRUE", true],
  ["flag = false", false],
  ["TRUE", true],
  ["FALSE", false],
  ["NOT FALSE", true],
  ["region", false], // not a boolean: UNKNOWN
  // keywords are case-insensitive, identifiers are not
  ["Region = 'eu'", false],
  ["region = 'eu' and count = 7", true],
  // precedence: NOT > AND > OR
  ["region = 'us' AND count = 7 OR flag", true],
  ["region = 'us' AND (count = 7 OR flag)", false],
  ["NOT region = 'us' AND count = 7", true],
  ["NOT (region = 'eu' AND count = 7)", false],
  ["region = 'us' OR region = 'eu' AND count = 8", false],
  ["(region = 'us' OR region = 'eu') AND count = 7", true],
  // IN
  ["region IN ('us', 'eu')", true],
  ["region NOT IN ('us', 'eu')", false],
  ["region IN ('us')", false],
  ["count IN (1, 7)", true],
  // LIKE
  ["word LIKE 'h%'", true],
  ["word LIKE 'h_llo'", true],
  ["word LIKE 'h_lo'", false],
  ["word LIKE '%l%'", true],
  ["word LIKE '%'", true],
  ["word NOT LIKE 'x%'", true],
  ["word LIKE 'HELLO'", false],
  ["priority LIKE '4'", false], // not a string: UNKNOWN
  ["NOT priority LIKE '4'", false],
  ["x-trace.id LIKE 'a!_b!%c' ESCAPE '!'", true],
  ["x-trace.id LIKE 'a!_bb%' ESCAPE '!'", false],
  ["x-trace.id LIKE '%!%%' ESCAPE '!'", true],
  // BETWEEN
  ["count BETWEEN 1 AND 7", true],
  ["count NOT BETWEEN 1 AND 7", false],
  ["count BETWEEN 8 AND 9", false],
  // IS NULL
  ["missing IS NULL", true],
  ["missing IS NOT NULL", false],
  ["region IS NOT NULL", true],
  ["correlation_id IS NULL", true],
  ["reply_to IS NULL", true],
  // three-valued logic: a NULL makes a comparison UNKNOWN, and only TRUE selects
  ["missing = 'x'", false],
  ["missing <> 'x'", false],
  ["NOT missing = 'x'", false],
  ["missing = 'x' OR region = 'eu'", true],
  ["missing = 'x' AND region = 'eu'", false],
  ["NOT (missing = 'x' AND region = 'us')", true], // UNKNOWN AND FALSE = FALSE
  ["NOT (missing = 'x' OR region = 'us')", false], // UNKNOWN OR FALSE = UNKNOWN
  ["missing IN ('x')", false],
  ["missing NOT IN ('x')", false],
  ["missing LIKE '%'", false],
  ["missing NOT LIKE '%'", false],
  ["missing BETWEEN 1 AND 2", false],
  ["NOT missing BETWEEN 1 AND 2", false],
  // coercion that cannot happen is UNKNOWN, not FALSE
  ["word > 3", false],
  ["NOT word > 3", false],
  ["flag > TRUE", false],
];

Deno.test("filter: selects as the table says", () => {
  for (const [src, want] of SELECTS) {
    assert.equal(compileFilter(src)(M), want, src);
  }
});

/** [selector, offset of the error, part of its text]. */
const ERRORS: [string, number, string][] = [
  ["", 0, "expected a condition"],
  ["   ", 3, "expected a condition"],
  ["region =", 8, "expected an identifier or a literal"],
  ["region = 'eu", 9, "unterminated string"],
  ["region == 'eu'", 8, "expected an identifier or a literal"],
  ["(region = 'eu'", 14, "expected ')'"],
  ["region = 'eu')", 13, "expected AND, OR or the end"],
  ["region = 'eu' AND", 17, "expected an identifier or a literal"],
  ["region = 'eu' region = 'us'", 14, "expected AND, OR or the end"],
  ["region # 'eu'", 7, "unexpected character"],
  ["region IN 'eu'", 10, "expected '('"],
  ["region IN ()", 11, "expected an identifier or a literal"],
  ["region IN (other)", 11, "expected a literal"],
  ["'eu' IN ('eu')", 0, "IN needs an identifier"],
  ["region LIKE 5", 12, "a pattern string"],
  ["region LIKE 'a' ESCAPE 'ab'", 12, "ESCAPE takes exactly one character"],
  ["region LIKE 'a!' ESCAPE '!'", 12, "ends with its escape"],
  ["region IS 'x'", 10, "expected NULL"],
  ["region = NULL", 9, "IS NULL"],
  ["region NOT = 'x'", 11, "IN, LIKE or BETWEEN after NOT"],
  ["'eu'", 0, "a value is not a condition"],
  ["42", 0, "a value is not a condition"],
  ["count BETWEEN 1 OR 2", 16, "expected AND"],
  ["amount = 1.2.3", 9, "bad number"],
  ["amount = 12abc", 9, "bad number"],
  ["AND = 1", 0, "expected an identifier or a literal"],
  ["1e999 = amount", 0, "number out of range"],
];

Deno.test("filter: syntax errors say where", () => {
  for (const [src, at, text] of ERRORS) {
    assert.throws(
      () => compileFilter(src),
      (e: unknown) => {
        assert.ok(e instanceof FilterError && e instanceof SyntaxError, src);
        assert.equal(e.at, at, `${src}: ${e.message}`);
        assert.ok(e.message.startsWith(`at ${at}: `), e.message);
        assert.ok(e.message.includes(text), `${src}: ${e.message}`);
        return true;
      },
    );
  }
});

Deno.test("filter: limits on length and depth", () => {
  const long = "region = '" + "x".repeat(FILTER_BYTES_MAX - 11) + "'";
  assert.equal(new TextEncoder().encode(long).length, FILTER_BYTES_MAX);
  compileFilter(long);
  assert.throws(() => compileFilter(long + " "), /longer than 1024 bytes/);
  // Bytes, not characters: 512 two-byte characters are 1024 bytes.
  assert.throws(
    () => compileFilter("region = '" + "é".repeat(FILTER_BYTES_MAX / 2) + "'"),
    FilterError,
  );
  const nest = (n: number) => "(".repeat(n) + "TRUE" + ")".repeat(n);
  assert.equal(compileFilter(nest(FILTER_DEPTH_MAX))(M), true);
  assert.throws(() => compileFilter(nest(FILTER_DEPTH_MAX + 1)), /nested deeper than 32/);
  assert.equal(compileFilter("NOT ".repeat(FILTER_DEPTH_MAX) + "TRUE")(M), true);
  assert.throws(() => compileFilter("NOT ".repeat(FILTER_DEPTH_MAX + 1) + "TRUE"), /nested deeper/);
});

Deno.test("filter: headers are read only when a condition needs them", () => {
  const m = msg({ region: "eu" });
  const parsed = () => (m as unknown as { parsed: number }).parsed;
  compileFilter("priority = 4 OR region = 'eu'")(m);
  assert.equal(parsed(), 0); // OR stopped at the first TRUE
  compileFilter("priority = 1 AND region = 'eu'")(m);
  assert.equal(parsed(), 0); // AND stopped at the first FALSE
  compileFilter("region = 'eu'")(m);
  assert.equal(parsed(), 1);
});

Deno.test("filter: LIKE on long values stays linear enough", () => {
  const long = msg({ v: "a".repeat(50_000) });
  const f = compileFilter("v LIKE '%a%a%a%a%a%a%a%a%b'");
  const t0 = performance.now();
  assert.equal(f(long), false);
  // Not a timing assertion on speed, a guard against exponential backtracking (minutes).
  assert.ok(performance.now() - t0 < 30_000);
});

/** The reference: SQL's truth tables over TRUE/FALSE/NULL. */
type Tri = true | false | null;
const tri: Record<string, Tri> = { t: true, f: false, u: null };
const triSrc: Record<string, string> = { t: "t = 1", f: "t = 2", u: "missing = 1" };
type Expr = { op: "lit"; v: string } | { op: "not"; e: Expr } | {
  op: "and" | "or";
  a: Expr;
  b: Expr;
};
function evalRef(e: Expr): Tri {
  switch (e.op) {
    case "lit":
      return tri[e.v];
    case "not": {
      const v = evalRef(e.e);
      return v === null ? null : !v;
    }
    case "and": {
      const a = evalRef(e.a), b = evalRef(e.b);
      return a === false || b === false ? false : a === null || b === null ? null : true;
    }
    case "or": {
      const a = evalRef(e.a), b = evalRef(e.b);
      return a === true || b === true ? true : a === null || b === null ? null : false;
    }
  }
}
function render(e: Expr): string {
  switch (e.op) {
    case "lit":
      return triSrc[e.v];
    case "not":
      return `NOT (${render(e.e)})`;
    default:
      return `(${render(e.a)}) ${e.op.toUpperCase()} (${render(e.b)})`;
  }
}

Deno.test("filter: three-valued logic matches SQL's truth tables (property)", () => {
  const { expr } = fc.letrec<{ expr: Expr }>((tie) => ({
    expr: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      fc.record({ op: fc.constant("lit" as const), v: fc.constantFrom("t", "f", "u") }),
      fc.record({ op: fc.constant("not" as const), e: tie("expr") }),
      fc.record({
        op: fc.constantFrom("and" as const, "or" as const),
        a: tie("expr"),
        b: tie("expr"),
      }),
    ),
  }));
  const m = msg({ t: "1" });
  fc.assert(
    fc.property(expr, (e) => {
      const src = render(e);
      fc.pre(!/\({11}/.test(src)); // stays inside the depth limit
      let f;
      try {
        f = compileFilter(src);
      } catch (err) {
        fc.pre(!(err instanceof FilterError && /deeper|longer/.test(err.message)));
        throw err;
      }
      const want = evalRef(e) === true;
      const notWant = evalRef({ op: "not", e }) === true;
      return f(m) === want && compileFilter(`NOT (${src})`)(m) === notWant;
    }),
    { numRuns: 300, seed: 12 },
  );
});

Deno.test("filter: headerMap reads what decodeHeaders reads, first value of a key", () => {
  const blocks: [string, string][][] = [
    [],
    [["a", "1"]],
    [["Trace-Id", "abc def"], ["x.y_z", ""], ["a", "é ü"], ["a", "second"]],
    [["k", "  padded\t"]],
  ];
  for (const pairs of blocks) {
    const block = encodeHeaders(pairs);
    const want = new Map<string, string>();
    for (const [k, v] of decodeHeaders(block)) if (!want.has(k)) want.set(k, v);
    assert.deepEqual(headerMap(block), want, JSON.stringify(pairs));
  }
});
