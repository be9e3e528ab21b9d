/**
 * The value grammar every front end shares (src/protocol/grammar.ts): a
 * message id is accepted or refused alike by the parser (`start:id:`), the
 * gRPC front end (`msg_id`) and the client (`start: { id }`).
 */
import assert from "node:assert/strict";
import { type Frame, msgIdOf, Parser } from "../../src/protocol/mod.ts";
import { startValue } from "../../src/client/checks.ts";
import { msgId } from "../../src/grpc/validate.ts";

const IDS: [string, number | undefined][] = [
  ["0", 0],
  ["42", 42],
  ["007", 7],
  [String(Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER],
  [String(Number.MAX_SAFE_INTEGER + 1), undefined],
  ["99999999999999999", undefined],
  ["", undefined],
  ["-1", undefined],
  ["1e3", undefined],
  [" 1", undefined],
  ["0x10", undefined],
  ["١", undefined],
];

Deno.test("msgIdOf: 1 to 16 decimal digits within 2^53", () => {
  for (const [text, id] of IDS) assert.equal(msgIdOf(text), id, JSON.stringify(text));
});

function parserTakes(id: string): boolean {
  const out: Frame[] = [];
  new Parser({}).push(new TextEncoder().encode(`SUB topic:ev start:id:${id}\r\n`), out);
  return out[0]?.op === "SUB";
}

function takes(check: () => unknown): boolean {
  try {
    check();
    return true;
  } catch {
    return false;
  }
}

Deno.test("a message id is taken or refused alike by the parser, gRPC and the client", () => {
  // A space would end the parser's option: it sees another token, not this id.
  for (const [text, id] of IDS.filter(([t]) => !t.includes(" "))) {
    const want = id !== undefined;
    assert.equal(parserTakes(text), want, `parser ${JSON.stringify(text)}`);
    assert.equal(takes(() => msgId(text)), want, `gRPC ${JSON.stringify(text)}`);
    assert.equal(takes(() => startValue({ id: text })), want, `client ${JSON.stringify(text)}`);
  }
});
