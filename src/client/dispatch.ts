/**
 * What the client does with each frame of one connection: replies settle the
 * oldest pending command, messages go to their subscription, server PINGs get
 * a PONG.
 *
 * @module
 */
import { brokerError, BrokerProtocolError, UNSOLICITED_CODES } from "./errors.ts";
import { type Link, QUIET_RUN, Reply } from "./link.ts";
import { Message } from "./message.ts";
import type { FrameHandler } from "./parser.ts";
import type { SubState } from "./subscription.ts";

/** The client state the dispatcher reads. */
export interface DispatchHost {
  /** The connection these frames came from. */
  link(): Link;
  /** The subscription with this id, if any. */
  sub(sid: string): SubState | undefined;
  /** An error nobody waits for: goes to the status stream. */
  report(err: Error): void;
  /** The broker broke the protocol: drop the connection. */
  protocolError(err: BrokerProtocolError): void;
}

const REPLY_NAMES = ["OK", "PONG", "INFO"];

/**
 * The frame handler of one connection.
 *
 * @example
 * ```ts ignore
 * const wire = new Wire(conn, { ...handleFrames(host), beforeFlush, onClose });
 * ```
 */
export function handleFrames(host: DispatchHost): FrameHandler {
  function reply(kind: Reply, arg: string): void {
    const link = host.link();
    const head = link.pending.peek();
    if (head === undefined || head.kind !== kind) {
      host.protocolError(
        new BrokerProtocolError(
          `Broker sent ${REPLY_NAMES[kind]} while the oldest command waits for ${
            head === undefined ? "nothing" : REPLY_NAMES[head.kind]
          }`,
        ),
      );
      return;
    }
    link.pending.shift();
    head.resolve?.(arg);
  }

  return {
    onMsg(frame) {
      const s = host.sub(frame.subId);
      // A message for a subscription we already dropped: the broker requeues it if unacked.
      if (s !== undefined) s.push(new Message(frame, s.ctx, host.link().gen));
    },
    onOk: (arg) => reply(Reply.OK, arg),
    onPong: () => reply(Reply.PONG, ""),
    onInfo(json) {
      // An INFO nobody asked for is not a reply: the greeting of a broker
      // that requires auth (the client never sends INFO first, so the
      // greeting cannot be mistaken for the answer to one), or a newer
      // broker announcing itself.
      if (host.link().pending.peek()?.kind === Reply.INFO) return reply(Reply.INFO, json);
      try {
        const nonce = JSON.parse(json).nonce;
        if (typeof nonce === "string") host.link().nonce = nonce;
      } catch { /* not ours to judge: the handshake's INFO will be */ }
    },
    onErr(code, text) {
      const link = host.link();
      const err = brokerError(code, text);
      if (UNSOLICITED_CODES.has(code)) {
        // Sent on the broker's own account, then it closes: not the answer to a command.
        link.fatal = err;
        host.report(err);
        return;
      }
      if (err.fatal) link.fatal = err;
      // A quiet run answers only errors: each is a quiet publish's, reported.
      if (link.pending.peek() === QUIET_RUN) return host.report(err);
      const head = link.pending.shift();
      if (head?.reject) head.reject(err);
      else host.report(err);
    },
    onPing() {
      link().wire.out.writeString("PONG\r\n");
      link().wire.schedule();
    },
  };

  function link(): Link {
    return host.link();
  }
}
