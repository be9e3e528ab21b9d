/**
 * The state of one connection as the client sees it: the queue of commands
 * waiting for their reply, and the acks batched for the next write.
 *
 * Reply matching: the broker answers every command in order and the client
 * keeps `verbose: true`, so every command gets exactly one reply and the
 * replies are matched first in, first out. A fire-and-forget publish still
 * takes its place in the queue, with no one to resolve (`NO_WAIT`); that is
 * what keeps the matching exact when `publish` and `publishNoWait` mix.
 *
 * Quiet runs: a burst of fire-and-forget publishes would still cost an `OK`
 * line per message, written by the broker and parsed here. After
 * {@linkcode QUIET_AFTER} of them in a row the link sends
 * `CONNECT {"verbose":false}` (no reply) and pushes one {@linkcode QUIET_RUN}
 * entry; publishes then go out with no entry at all. The next command that
 * wants its reply first sends `CONNECT {"verbose":true}`, whose `OK` settles
 * `QUIET_RUN`. The broker answers in order, so every `ERR` that arrives while
 * `QUIET_RUN` heads the queue belongs to a quiet publish (or an unconfirmed
 * ack) and goes to the status stream, and the matching stays exact.
 *
 * @module
 */
import type { AckWindow } from "./ack_window.ts";
import { ackGroups, encodeAcks } from "./sub_lines.ts";
import { type BrokerReplyError, UnknownMsgIdError } from "./errors.ts";
import { Ring } from "../ring.ts";
import { RESOLVED } from "./message.ts";
import type { Wire } from "./wire.ts";

/** Which reply a command waits for. */
export const Reply = { OK: 0, PONG: 1, INFO: 2 } as const;
/** One of {@linkcode Reply}. */
export type Reply = (typeof Reply)[keyof typeof Reply];

/** A command waiting for its reply; `null` handlers: nobody waits (errors go to the status stream). */
export interface Pending {
  kind: Reply;
  resolve: ((arg: string) => void) | null;
  reject: ((err: Error) => void) | null;
}

/** The shared entry of every fire-and-forget command. */
export const NO_WAIT: Pending = { kind: Reply.OK, resolve: null, reject: null };

/**
 * The entry of a quiet run (see the module doc): `ERR`s while it heads the
 * queue are reported, not matched; the `OK` that ends the run removes it.
 */
export const QUIET_RUN: Pending = { kind: Reply.OK, resolve: null, reject: null };

/** Fire-and-forget publishes in a row after which the link turns the broker's `OK`s off. */
export const QUIET_AFTER = 16;

type Deferred = { resolve: () => void; reject: (err: Error) => void };

/** One connection: its wire, generation, pending replies and batched acks. */
export class Link {
  /** Counts connections; messages remember theirs, since acks only mean something on the connection that delivered them. */
  readonly gen: number;
  readonly wire: Wire;
  readonly pending: Ring<Pending> = new Ring();
  /** Resolved when the broker answered CONNECT and INFO. */
  readonly handshake: PromiseWithResolvers<void> = Promise.withResolvers();
  /** The fatal error the broker sent before closing, if any. */
  fatal: BrokerReplyError | undefined;
  /** True once the handshake completed: the connection counts as up. */
  ready = false;
  /** Keep-alive PINGs without a PONG yet. */
  pingsOut = 0;
  /** The nonce of the broker's INFO greeting (sent only when it requires auth). */
  nonce: string | undefined;
  /** Ids to ack by id with the next write. */
  #acks: string[] = [];
  /** Ack windows with acks to write (each once; see `ack_window.ts`). */
  #windows: AckWindow[] = [];
  /** The entry of each ack line nobody waits for: an `ERR` goes to the status stream. */
  #ackReport: Pending;
  /** `CONNECT` lines that turn the broker's `OK`s off and on; unset until the handshake is written. */
  #quietLine = "";
  #loudLine = "";
  /** True while the broker has `OK`s off for this connection (as of the bytes written so far). */
  #quiet = false;
  /** Fire-and-forget publishes since the last command that waits for a reply. */
  #noWaitRun = 0;
  #ackWaiters: Map<string, Deferred> | null = null;
  #report: (err: Error) => void;

  /**
   * @param gen the connection's number
   * @param wire its socket
   * @param report where errors of fire-and-forget acks go
   */
  constructor(gen: number, wire: Wire, report: (err: Error) => void) {
    this.gen = gen;
    this.wire = wire;
    this.#report = report;
    this.#ackReport = { kind: Reply.OK, resolve: null, reject: report };
    this.handshake.promise.catch(() => {});
  }

  /** `send` of a command nobody waits for: its error goes where a fire-and-forget ack's does. */
  sendReported(line: string): void {
    this.send(line, this.#ackReport);
  }

  /**
   * Appends one command line and its pending entry, in the same order.
   * Batched acks go first: an `UNSUB` or a `PING` (flush) must not overtake
   * the acks issued before it, or the broker would requeue those messages.
   */
  send(line: string, pending: Pending): void {
    this.flushAcks();
    this.loud();
    this.wire.out.writeString(line + "\r\n");
    this.pending.push(pending);
    this.wire.schedule();
  }

  /**
   * Sets the `CONNECT` fields a quiet-run toggle repeats (client id and
   * name: a `CONNECT` replaces them; credentials are not sent again). Until
   * called, the link never goes quiet.
   */
  setConnectFields(fields: Record<string, unknown>): void {
    this.#quietLine = `CONNECT ${JSON.stringify({ ...fields, verbose: false })}\r\n`;
    this.#loudLine = `CONNECT ${JSON.stringify({ ...fields, verbose: true })}\r\n`;
  }

  /** True while quiet: commands written now get no `OK`. */
  get quiet(): boolean {
    return this.#quiet;
  }

  /**
   * Before a command that waits for its reply: ends a quiet run (the
   * `CONNECT`'s `OK` settles `QUIET_RUN`) and restarts the count.
   */
  loud(): void {
    this.#noWaitRun = 0;
    if (!this.#quiet) return;
    this.#quiet = false;
    this.wire.out.writeString(this.#loudLine);
  }

  /**
   * Before a fire-and-forget publish: true when it needs no pending entry
   * (the link is quiet, or becomes quiet now after `QUIET_AFTER` in a row).
   */
  noWait(): boolean {
    if (this.#quiet) return true;
    if (++this.#noWaitRun < QUIET_AFTER || this.#quietLine === "") return false;
    // Batched acks still written loud: they were issued before this publish.
    this.flushAcks();
    this.wire.out.writeString(this.#quietLine);
    this.pending.push(QUIET_RUN);
    this.#quiet = true;
    return true;
  }

  /** Sends a command and resolves with its reply argument. */
  command(line: string, kind: Reply = Reply.OK): Promise<string> {
    return new Promise((resolve, reject) => this.send(line, { kind, resolve, reject }));
  }

  /**
   * Writes `window`'s acks with the next write (its `upto` and its acks out
   * of order; see `flushAcks`). No promise: errors go to the status stream.
   *
   * When: at the end of this tick, unless its subscription still has
   * messages buffered (`more`): a `for await` loop takes those one microtask
   * at a time, and each would otherwise end its own tick with its own line.
   * Then the acks wait until the ack of the message that empties the buffer,
   * or at the latest for the next macrotask (a loop that awaits real work
   * between messages), so a consumer acking every message sends one line per
   * batch it read in both shapes.
   */
  ackLater(window: AckWindow, more: boolean): void {
    if (!window.queued) {
      window.queued = true;
      this.#windows.push(window);
    }
    if (!more) this.wire.schedule();
    else this.#ackTimer ??= setTimeout(this.#onAckTimer, 0);
  }

  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #onAckTimer = (): void => {
    this.#ackTimer = undefined;
    this.wire.schedule();
  };

  /** Queues an ack by id for the next write; with `confirm`, resolves on the broker's answer. */
  ack(id: string, confirm: boolean): Promise<void> {
    this.#acks.push(id);
    this.wire.schedule();
    if (!confirm) return RESOLVED;
    this.#ackWaiters ??= new Map();
    const d = Promise.withResolvers<void>();
    this.#ackWaiters.set(id, d);
    return d.promise;
  }

  /**
   * Writes the batched acks: first the `ACK msg_id:` lines of the acks by id
   * (see `ackGroups`; confirmed acks and acks out of order), then one
   * `ACK sub_id:<sid> upto:<id>` per window with a settled run. Lines by id
   * go first so an `upto` never settles a delivery that a line after it names
   * (that line would get `UNKNOWN_MSG_ID`). Each line has one pending entry;
   * on `ERR UNKNOWN_MSG_ID` the broker still settled the other ids of a line,
   * so only the waiter whose id the error names is rejected.
   */
  flushAcks(): void {
    const windows = this.#windows;
    if (windows.length === 0 && this.#acks.length === 0) return;
    for (let i = 0; i < windows.length; i++) {
      windows[i].queued = false;
      this.#uptos[i] = windows[i].collect(this.#acks);
    }
    this.#flushIds();
    for (let i = 0; i < windows.length; i++) {
      const upto = this.#uptos[i];
      if (upto < 0) continue;
      if (!this.#quiet) this.pending.push(this.#ackReport);
      this.wire.out.writeString(`ACK sub_id:${windows[i].sid} upto:${upto}\r\n`);
    }
    windows.length = 0;
  }

  /** The `upto` of each window of `#windows` during `flushAcks` (-1: none). */
  #uptos: number[] = [];

  #flushIds(): void {
    if (this.#acks.length === 0) return;
    const ids = this.#acks;
    const waiters = this.#ackWaiters;
    this.#acks = [];
    this.#ackWaiters = null;
    const groups = ackGroups(ids);
    // Nobody waits: inside a quiet run they go without entries (an ERR is reported).
    if (waiters === null && this.#quiet) return encodeAcks(this.wire.out, groups);
    this.loud();
    encodeAcks(this.wire.out, groups);
    for (const line of groups) {
      if (waiters === null) {
        this.pending.push(this.#ackReport);
        continue;
      }
      const mine = line.filter((id) => waiters.has(id));
      this.pending.push({
        kind: Reply.OK,
        resolve: mine.length === 0 ? null : () => {
          for (const id of mine) waiters!.get(id)!.resolve();
        },
        reject: (err) => {
          let named = false;
          for (const id of mine) {
            // The broker names each unknown id as a `msg_id:<id>` token.
            const hit = !(err instanceof UnknownMsgIdError) ||
              err.message.split(" ").includes(`msg_id:${id}`);
            named ||= hit;
            if (hit) waiters!.get(id)!.reject(err);
            else waiters!.get(id)!.resolve();
          }
          if (!named) this.#report(err);
        },
      });
    }
  }

  /** The connection is gone: every waiting command fails with `err`. */
  failAll(err: Error): void {
    if (this.#ackWaiters !== null) {
      for (const d of this.#ackWaiters.values()) d.reject(err);
      this.#ackWaiters = null;
    }
    this.#acks = [];
    for (const w of this.#windows) w.queued = false;
    this.#windows.length = 0;
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    for (const p of this.pending.drain()) p.reject?.(err);
    this.handshake.reject(err);
  }
}
