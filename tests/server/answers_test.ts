/**
 * `AnswerSlots`, the router's replies for front ends without a reply line
 * (gRPC, UDP): a held slot answers whoever it was held for, by number, even
 * after the next command set another target; an answer given at once goes to
 * the command at hand; reply lines are read back into code and text.
 */
import assert from "node:assert/strict";
import { type Answers, AnswerSlots, replyOf } from "../../src/server/mod.ts";
import { errFrame } from "../../src/protocol/mod.ts";

const encoder = new TextEncoder();

/** Records every answer as `name:i:code:text`. */
function recorder(name: string, into: string[]): Answers {
  return { answer: (i, code, text) => void into.push(`${name}:${i}:${code ?? "OK"}:${text}`) };
}

Deno.test("answers: held slots answer whom they were held for, in any order", () => {
  const got: string[] = [];
  const a = recorder("a", got);
  const b = recorder("b", got);
  const slots = new AnswerSlots(a);
  slots.i = 3;
  const first = slots.hold();
  slots.to = b;
  slots.i = 7;
  const second = slots.hold();
  slots.error("LIMIT", "too many wait"); // answered at once: the command at hand (b's 7)
  slots.fill(second, errFrame("UNAVAILABLE", "the leader went: the outcome is unknown"));
  slots.fillOk(first, "msg_id:42");
  slots.bytes(errFrame("NOT_LEADER", "n1 queue:jobs"));
  assert.deepEqual(got, [
    "b:7:LIMIT:too many wait",
    "b:7:UNAVAILABLE:the leader went: the outcome is unknown",
    "a:3:OK:msg_id:42",
    "b:7:NOT_LEADER:n1 queue:jobs",
  ]);
});

Deno.test("answers: reply lines read back into code and text", () => {
  assert.deepEqual(replyOf(encoder.encode("OK\r\n")), { code: undefined, text: "" });
  assert.deepEqual(replyOf(encoder.encode("OK msg_id:17 duplicate:true\r\n")), {
    code: undefined,
    text: "msg_id:17 duplicate:true",
  });
  assert.deepEqual(replyOf(encoder.encode("ERR UNKNOWN_MSG_ID msg_id:9 not in flight\r\n")), {
    code: "UNKNOWN_MSG_ID",
    text: "msg_id:9 not in flight",
  });
  assert.deepEqual(replyOf(encoder.encode("ERR LIMIT\r\n")), { code: "LIMIT", text: "" });
});
