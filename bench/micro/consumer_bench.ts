/**
 * The bench's queue consumers without a socket: 1,000 16 B deliveries of one
 * consumer parsed by the Relayr driver (each id onto an ACK line) and by the
 * NATS driver (a queue group: nothing to send back), what each consumer
 * thread of `deno task bench --scenarios queue` does per message besides
 * reading and writing.
 */
import { drivers, type Events, Mode, type Protocol } from "../drivers/mod.ts";

const COUNT = 1000;
const FIRST_ID = 1_830_000_000_000_001;

function deliveries(protocol: Protocol): Uint8Array {
  let text = "";
  for (let i = 0; i < COUNT; i++) {
    text += protocol === "relayr"
      ? `MSG queue:bench.r12 sub_id:c0 msg_id:${FIRST_ID + 2 * i} 16\r\n`
      : "MSG bench.r12 1 16\r\n";
    text += "0123456789abcdef\r\n";
  }
  return new TextEncoder().encode(text);
}

/** Counts messages and reads a payload byte, as the bench's receiver reads the sequence number. */
class Count implements Events {
  n = 0;
  sum = 0;
  msg(buf: Uint8Array, start: number): void {
    this.n++;
    this.sum += buf[start];
  }
  pong(): void {}
  error(text: string): void {
    throw new Error(text);
  }
}

for (const protocol of ["relayr", "nats"] as const) {
  const bytes = deliveries(protocol);
  const events = new Count();
  const parser = drivers[protocol].parser(events, Mode.consume, "r12", 0, false);
  Deno.bench(`queue consumer, ${protocol}: ${COUNT} x 16 B`, { group: "consumer" }, () => {
    const before = events.n;
    parser.feed(bytes, 0, bytes.length);
    parser.takeOutput();
    if (events.n - before !== COUNT) throw new Error(`${events.n - before} of ${COUNT}`);
  });
}
