/**
 * The SDK's delivery path without a socket: a 64 KiB chunk of one
 * subscription's 16 B `MSG`s through the client parser's fast path, with and
 * without a `Message` per frame (what a `callback` subscription pays per
 * message before its callback).
 */
import { FrameParser } from "../../src/client/parser.ts";
import { Message, type MessageContext } from "../../src/client/message.ts";

const enc = new TextEncoder();
const FIRST_ID = 1_839_783_748_263_936;
let text = "";
let frames = 0;
while (text.length < 65_000) {
  text += `MSG topic:sdk.run.abcdef sub_id:s1 msg_id:${FIRST_ID + frames++} 16\r\n`;
  text += "0123456789abcdef\r\n";
}
const chunk = enc.encode(text);
const ctx: MessageContext = {
  explicit: false,
  ack: () => Promise.resolve(),
  nack: () => Promise.resolve(),
  publish: () => Promise.resolve(""),
};
const ignore = () => {};
let sink = 0;

for (const withMessage of [false, true]) {
  const parser = new FrameParser({
    onMsg: withMessage
      ? (f) => void (sink += new Message(f, ctx, 1).size)
      : (f) => void (sink += f.len),
    onOk: ignore,
    onPong: ignore,
    onInfo: ignore,
    onErr: ignore,
    onPing: ignore,
  });
  Deno.bench({
    name: `client: 64 KiB of 16 B MSGs (${frames} frames), ${
      withMessage ? "a Message each" : "parse only"
    }`,
    group: "client deliver",
    fn() {
      parser.push(chunk);
    },
  });
}

globalThis.addEventListener("unload", () => {
  if (sink < 0) console.log(sink); // keeps the work observable
});
