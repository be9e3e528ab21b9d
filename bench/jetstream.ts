/**
 * JetStream setup for the `nats-js` queue runs, over the raw protocol: before
 * a run, a file-storage work-queue stream on the run's queue subject and one
 * durable pull consumer with explicit acks; after it, the stream is deleted
 * (with its consumer and files). Not on the hot path: one request at a time,
 * replies decoded as JSON.
 *
 * @module
 */
import { apiRequest, DURABLE, queueSubject, streamOf } from "./drivers/natsjs.ts";
import { Wire } from "./wire.ts";

const INBOX = "_INBOX.bench.setup";
/** Longest wait for one API reply. */
const REPLY_TIMEOUT_MS = 10_000;
/**
 * Delivered and not yet acknowledged messages the consumer allows: above what
 * the bench's window and pull credit can leave in flight, so it never throttles.
 */
const MAX_ACK_PENDING = 65_536;
/**
 * How long JetStream waits for an ACK before redelivering, ns: far beyond a
 * run's stall limit, so a redelivery (counted as a duplicate, which fails the
 * run as it would for Relayr) only happens when something is wrong.
 */
const ACK_WAIT_NS = 120e9;

/** Sends JetStream API requests on one connection and reads their JSON replies. */
class Api {
  #wire: Wire;
  #text = "";

  private constructor(wire: Wire) {
    this.#wire = wire;
  }

  static async open(port: number): Promise<Api> {
    const wire = await Wire.dial(port);
    wire.write(
      `CONNECT {"verbose":false,"pedantic":false,"lang":"relayr-bench","headers":true,` +
        `"no_responders":true}\r\nSUB ${INBOX} 1\r\n`,
    );
    return new Api(wire);
  }

  /** One request; resolves to the reply's JSON, throws on an API error or no reply. */
  async call(subject: string, body: unknown): Promise<Record<string, unknown>> {
    this.#wire.write(apiRequest(subject, INBOX, body));
    const deadline = Date.now() + REPLY_TIMEOUT_MS;
    for (;;) {
      const reply = this.#take();
      if (reply !== null) {
        if (reply.startsWith("NATS/1.0")) {
          throw new Error(`${subject}: ${reply.split("\r\n")[0]} (is JetStream enabled?)`);
        }
        const json = JSON.parse(reply) as Record<string, unknown>;
        const error = json.error as { description?: string; code?: number } | undefined;
        if (error) throw new Error(`${subject}: ${error.code} ${error.description}`);
        return json;
      }
      if (Date.now() > deadline) throw new Error(`${subject}: no reply in 10 s`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<false>((r) => timer = setTimeout(r, REPLY_TIMEOUT_MS, false));
      const more = await Promise.race([this.#wire.fill(), late]);
      clearTimeout(timer);
      if (!more) throw new Error(`${subject}: ${this.#wire.failure ?? "connection closed"}`);
      const w = this.#wire;
      for (let i = 0; i < w.end; i++) this.#text += String.fromCharCode(w.buf[i]);
      w.shift(w.end);
    }
  }

  /** The payload of the next MSG/HMSG, skipping other lines; null when incomplete. */
  #take(): string | null {
    for (;;) {
      const nl = this.#text.indexOf("\r\n");
      if (nl < 0) return null;
      const line = this.#text.slice(0, nl);
      if (line.startsWith("MSG ") || line.startsWith("HMSG ")) {
        const size = Number(line.slice(line.lastIndexOf(" ") + 1));
        if (this.#text.length < nl + 2 + size + 2) return null;
        const payload = this.#text.slice(nl + 2, nl + 2 + size);
        this.#text = this.#text.slice(nl + 2 + size + 2);
        return payload;
      }
      if (line.startsWith("PING")) this.#wire.write("PONG\r\n");
      if (line.startsWith("-ERR")) throw new Error(`JetStream setup: ${line}`);
      this.#text = this.#text.slice(nl + 2);
    }
  }

  close(): void {
    this.#wire.close();
  }
}

/**
 * Creates the run's stream (file storage, work-queue retention, one subject,
 * `replicas` copies: 3 on a three-server cluster) and its durable.
 */
export async function createQueue(port: number, name: string, replicas = 1): Promise<void> {
  const api = await Api.open(port);
  try {
    const stream = streamOf(name);
    await api.call(`$JS.API.STREAM.CREATE.${stream}`, {
      name: stream,
      subjects: [queueSubject(name)],
      retention: "workqueue",
      storage: "file",
      discard: "old",
      num_replicas: replicas,
    });
    await api.call(`$JS.API.CONSUMER.DURABLE.CREATE.${stream}.${DURABLE}`, {
      stream_name: stream,
      config: {
        durable_name: DURABLE,
        deliver_policy: "all",
        ack_policy: "explicit",
        ack_wait: ACK_WAIT_NS,
        max_ack_pending: MAX_ACK_PENDING,
        replay_policy: "instant",
      },
    });
  } finally {
    api.close();
  }
}

/** Deletes the run's stream, its consumer and its files. */
export async function deleteQueue(port: number, name: string): Promise<void> {
  const api = await Api.open(port);
  try {
    await api.call(`$JS.API.STREAM.DELETE.${streamOf(name)}`, {});
  } finally {
    api.close();
  }
}
