/**
 * `MsgLine` writes exactly the MSG line of a plain delivery, or says to
 * write it another way: checked against the line as text over seeded random
 * runs of heads, sizes and ids (steps of 0-9, longer jumps, older ids, a
 * digit more or less), and at the edges where its count-up carries.
 */
import assert from "node:assert/strict";
import { msgHead, MsgLine, PLAIN_TAIL_BYTES_MAX } from "../../src/protocol/mod.ts";
import { rng } from "../helpers.ts";

const dec = new TextDecoder();

/** What `Outbound.appendMsg` writes for a plain delivery, through `line` or its fallback. */
function write(line: MsgLine, head: Uint8Array, id: number, size: number): string {
  const buf = new Uint8Array(head.length + PLAIN_TAIL_BYTES_MAX + 3).fill(0x7e);
  const end = line.write(buf, 1, head, id, size);
  if (end < 0) return "";
  assert.equal(buf[0], 0x7e, "nothing before the line");
  assert.equal(buf[end], 0x7e, "nothing after the line");
  return dec.decode(buf.subarray(1, end));
}

const text = (head: string, id: number, size: number) => `${head} msg_id:${id} ${size}\r\n`;

Deno.test("msg line: the line of each delivery, or -1 the first time after another head", () => {
  const names = ["MSG queue:work sub_id:c0", "MSG topic:a.b sub_id:s12", "MSG queue:w sub_id:x"];
  const heads = names.map((n) => msgHead(n.split(" ")[1], n.split("sub_id:")[1]));
  const r = rng(15);
  for (let round = 0; round < 50; round++) {
    const line = new MsgLine();
    let h = 0;
    let id = Math.floor(r() * 1e15) + 1;
    let size = 16;
    let last = -1; // the head of the last call
    for (let i = 0; i < 400; i++) {
      const x = r();
      if (x < 0.05) h = (h + 1) % heads.length;
      if (x > 0.97) size = [0, 9, 10, 16, 256, 4096, 1048576][Math.floor(r() * 7)];
      const step = r();
      if (step < 0.7) id += Math.floor(r() * 10);
      else if (step < 0.8) id += Math.floor(r() * 1e6);
      else if (step < 0.85) id = Math.max(0, id - Math.floor(r() * 100));
      else if (step < 0.9) id = Math.max(0, 10 ** Math.floor(r() * 16) - Math.floor(r() * 3)); // 99.., 100..
      const got = write(line, heads[h], id, size);
      if (h !== last) assert.equal(got, "", "a new head: the caller writes it");
      else assert.equal(got, text(names[h], id, size), `round ${round}, step ${i}`);
      last = h;
    }
  }
});

Deno.test("msg line: counting up carries through nines and starts over when a digit is added", () => {
  const head = msgHead("queue:q", "c0");
  const line = new MsgLine();
  assert.equal(write(line, head, 1, 16), "");
  for (const id of [1, 8, 9, 10, 99, 100, 1099999, 1100000, 9999999999999998, 9999999999999999]) {
    assert.equal(write(line, head, id, 16), text("MSG queue:q sub_id:c0", id, 16));
  }
  assert.equal(
    write(line, head, 2 ** 53 - 1, 16),
    text("MSG queue:q sub_id:c0", 2 ** 53 - 1, 16),
    "an older id is built again",
  );
});
