/**
 * The reply inbox of gRPC Requests, as the SDK's (src/client/request.ts):
 * one wildcard subscription `topic:_inbox.<random>.>` for the listener; each
 * Request publishes with `reply_to` a topic of its own under it and a
 * correlation id, and the first message published there answers it. The
 * inbox is a `Client` of the broker that never pushes back: a reply is
 * handed to its waiting call at once, and one that finds none is dropped.
 *
 * @module
 */
import { type Broker, type Client, InFlight, type Subscription } from "../broker/mod.ts";
import { GRPC_REQUESTS_PENDING_MAX } from "../config/mod.ts";
import type { Timer } from "../runtime/mod.ts";
import type { Message } from "../storage/mod.ts";
import { headDestination, type MessageObject, messageObject } from "./codec.ts";
import { GrpcRefusal } from "./errors.ts";

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

function randomToken(n: number): string {
  let out = "";
  for (const b of crypto.getRandomValues(new Uint8Array(n))) out += ALPHABET[b % ALPHABET.length];
  return out;
}

interface Waiting {
  done(err: GrpcRefusal | undefined, reply: MessageObject | undefined): void;
  timer: Timer;
}

/** The listener's reply inbox and its waiting Requests. */
export class Inbox implements Client {
  readonly id: number;
  readonly inflight: InFlight = new InFlight();
  /** `topic:_inbox.<random>`; replies come on `<prefix>.<n>`. */
  readonly prefix = `topic:_inbox.${randomToken(22)}`;
  #broker: Broker;
  #waiting = new Map<string, Waiting>();
  #seq = 0;
  #sub: Subscription | undefined;

  constructor(id: number, broker: Broker) {
    this.id = id;
    this.#broker = broker;
  }

  /** Requests waiting for a reply. */
  get size(): number {
    return this.#waiting.size;
  }

  /** Subscribes the inbox (at listener start). */
  open(): void {
    this.#sub = this.#broker.subscribe(this, `${this.prefix}.>`, "inbox", {
      sid: "inbox",
      ack: "none",
      prefetch: undefined,
      ackTimeoutMs: undefined,
    });
    this.#sub.activate();
  }

  /**
   * A reply topic and correlation id for a new Request; `done` is called once,
   * with the reply, or a TIMEOUT refusal after `timeoutMs`. Returns the
   * canceller (for a cancelled call).
   */
  wait(
    timeoutMs: number,
    done: Waiting["done"],
  ): { replyTo: string; correlationId: string; cancel: () => void } {
    if (this.#waiting.size >= GRPC_REQUESTS_PENDING_MAX) {
      throw new GrpcRefusal("LIMIT", `${GRPC_REQUESTS_PENDING_MAX} requests are waiting already`);
    }
    const token = `r${++this.#seq}`;
    const timer = this.#broker.clock.after(timeoutMs, () => {
      if (this.#waiting.delete(token)) {
        done(new GrpcRefusal("TIMEOUT", `no reply within ${timeoutMs} ms`), undefined);
      }
    });
    this.#waiting.set(token, { done, timer });
    return {
      replyTo: `${this.prefix}.${token}`,
      correlationId: token,
      cancel: () => {
        if (this.#waiting.delete(token)) timer.cancel();
      },
    };
  }

  /** Ends every wait with `err` and the subscription (listener shutdown). */
  close(err: GrpcRefusal): void {
    for (const [token, w] of this.#waiting) {
      this.#waiting.delete(token);
      w.timer.cancel();
      w.done(err, undefined);
    }
    this.#sub?.close(false);
  }

  // --- Client ---

  wantsMore(): boolean {
    return true;
  }

  sendMsg(head: Uint8Array, msg: Message, delivery: number): void {
    const dest = headDestination(head);
    const token = dest.slice(this.prefix.length + 1);
    const w = this.#waiting.get(token);
    if (w === undefined) return; // late or stray: nobody waits
    this.#waiting.delete(token);
    w.timer.cancel();
    w.done(undefined, messageObject(dest, msg, delivery));
  }

  slowConsumer(_detail: string): void {}

  delivered(_id: number): void {}
}
