/**
 * Request/reply over `reply_to` and `correlation_id`: one wildcard inbox
 * subscription per client (`topic:_inbox.<random>.>`), each request gets its
 * own reply topic under it and a correlation id, and the reply resolves the
 * matching request.
 *
 * @module
 */
import type { PublishOptions } from "./options.ts";
import { TimeoutError } from "./errors.ts";
import type { Message } from "./message.ts";
import type { Subscription } from "./subscription.ts";

type Waiting = {
  resolve: (msg: Message) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
};

/** Options of `Client.request`. */
export interface RequestOptions extends Omit<PublishOptions, "replyTo" | "correlationId"> {
  /** How long to wait for the reply (default: the client's `requestTimeoutMs`). */
  timeoutMs?: number;
}

/** What the inbox needs from the client. */
export interface InboxHost {
  subscribe(dest: string, callback: (msg: Message) => void): Promise<Subscription>;
  publish(dest: string, body: Uint8Array | string, opts: PublishOptions): Promise<string>;
}

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/** A random token of `A-Z a-z 0-9`, `n` characters long. */
export function randomToken(n: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(n));
  let out = "";
  for (const b of bytes) out += ALPHABET[b % ALPHABET.length];
  return out;
}

/** The client's reply inbox and its outstanding requests. */
export class Inbox {
  /** `topic:_inbox.<random>`; replies arrive on `<prefix>.<n>`. */
  readonly prefix: string = `topic:_inbox.${randomToken(22)}`;
  #host: InboxHost;
  #waiting = new Map<string, Waiting>();
  #seq = 0;
  #sub: Promise<Subscription> | null = null;
  #idle: (() => void)[] = [];

  /** @param host the client's subscribe and publish */
  constructor(host: InboxHost) {
    this.#host = host;
  }

  /** Outstanding requests. */
  get size(): number {
    return this.#waiting.size;
  }

  /** The inbox subscription, once created. */
  get subscription(): Promise<Subscription> | null {
    return this.#sub;
  }

  /** Publishes a request and waits for its reply (or `TimeoutError`). */
  async request(
    dest: string,
    body: Uint8Array | string,
    opts: PublishOptions,
    timeoutMs: number,
  ): Promise<Message> {
    if (this.#sub === null) {
      this.#sub = this.#host.subscribe(`${this.prefix}.>`, (msg) => this.#deliver(msg));
      this.#sub.catch(() => this.#sub = null); // retry on the next request
    }
    await this.#sub;
    const token = `r${++this.#seq}`;
    const reply = new Promise<Message>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#settle(token)?.reject(
          new TimeoutError(`No reply to the request on ${dest} within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      this.#waiting.set(token, { resolve, reject, timer });
    });
    // Not awaited: the timeout counts from here whether or not the broker's
    // OK has come (awaiting it left `reply` without a handler, so a timeout
    // that fired first was an unhandled rejection, and a lost OK hung the
    // request past its timeout); a refused publish fails the request.
    this.#host.publish(dest, body, {
      ...opts,
      replyTo: `${this.prefix}.${token}`,
      correlationId: token,
    }).catch((err) => this.#settle(token)?.reject(err as Error));
    return reply;
  }

  /** Fails every outstanding request (the client closed). */
  failAll(err: Error): void {
    for (const token of [...this.#waiting.keys()]) this.#settle(token)?.reject(err);
  }

  /** Resolves once no request is outstanding (each ends by its reply or timeout). */
  idle(): Promise<void> {
    if (this.#waiting.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #deliver(msg: Message): void {
    const token = msg.correlationId ?? msg.dest.slice(msg.dest.lastIndexOf(".") + 1);
    this.#settle(token)?.resolve(msg);
  }

  #settle(token: string): Waiting | undefined {
    const w = this.#waiting.get(token);
    if (w === undefined) return undefined;
    this.#waiting.delete(token);
    clearTimeout(w.timer);
    if (this.#waiting.size === 0) { for (const resolve of this.#idle.splice(0)) resolve(); }
    return w;
  }
}
