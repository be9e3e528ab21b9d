/**
 * A `Conn` over a WebSocket, shared by the broker (Deno's upgraded sockets,
 * Bun's server sockets) and the client (the standard `WebSocket` of browsers,
 * Deno and Bun). The protocol runs over it unchanged: inbound messages become
 * the chunks of `readable` (a frame may span messages, a message may hold many
 * frames), and a `write` goes out as one message, or several past
 * `WS_SEND_BYTES_MAX`.
 *
 * Back-pressure: a standard WebSocket never refuses a `send`, it buffers; so
 * `write` resolves only once `bufferedAmount` is under `WS_BUFFERED_BYTES_HIGH`,
 * which keeps the owner's one-write-in-flight rule meaningful: a peer that
 * stops reading backs the owner's buffer up, as a TCP socket would.
 *
 * This file uses web APIs only (nothing of the runtime seam), so the
 * browser client can take it as it is.
 *
 * @module
 */
import {
  WS_BUFFERED_BYTES_HIGH,
  WS_DRAIN_POLL_MS_MAX,
  WS_INBOUND_BYTES_MAX,
  WS_SEND_BYTES_MAX,
} from "../config/limits.ts";
import type { Conn } from "../runtime/mod.ts";

/** Close code of a message over the size limit (RFC 6455 7.4.1). */
export const WS_CLOSE_TOO_BIG = 1009;
/** Close code of a normal close. */
export const WS_CLOSE_NORMAL = 1000;

const encoder = new TextEncoder();

/**
 * Inbound messages as a stream of owned byte chunks. A WebSocket cannot be
 * paused, so the stream is bounded instead: a message over `messageBytesMax`,
 * or more than `WS_INBOUND_BYTES_MAX` waiting for a reader, fails the stream
 * (the reader sees a `RangeError`) and `push` says so, for the caller to
 * close the socket with 1009.
 */
export class MessageInbox {
  /** What the owner reads. */
  readonly readable: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #messageBytesMax: number;
  /** What may wait for the reader: `WS_INBOUND_BYTES_MAX`, or one message of the largest size. */
  #bytesMax: number;
  #ended = false;

  /**
   * @param messageBytesMax largest message taken
   * @param onCancel called when the reader cancels (the owner closes the socket)
   */
  constructor(messageBytesMax: number, onCancel: () => void) {
    this.#messageBytesMax = messageBytesMax;
    this.#bytesMax = Math.max(WS_INBOUND_BYTES_MAX, messageBytesMax);
    this.readable = new ReadableStream<Uint8Array>({
      start: (c) => {
        this.#controller = c;
      },
      cancel: () => {
        this.#ended = true;
        onCancel();
      },
    }, {
      highWaterMark: this.#bytesMax,
      size: (chunk) => chunk.byteLength,
    });
  }

  /** One message (text or binary); false when it broke a limit and the stream failed. */
  push(data: string | ArrayBuffer | ArrayBufferView): boolean {
    if (this.#ended) return true;
    const bytes = typeof data === "string"
      ? encoder.encode(data)
      : data instanceof ArrayBuffer
      ? new Uint8Array(data)
      : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength > this.#messageBytesMax) {
      this.end(
        new RangeError(
          `WebSocket message of ${bytes.byteLength} bytes is over the limit of ${this.#messageBytesMax}`,
        ),
      );
      return false;
    }
    if ((this.#controller.desiredSize ?? 0) < bytes.byteLength) {
      this.end(
        new RangeError(
          `more than ${this.#bytesMax} inbound WebSocket bytes wait for a paused reader`,
        ),
      );
      return false;
    }
    if (bytes.byteLength > 0) this.#controller.enqueue(bytes);
    return true;
  }

  /** The socket closed: ends the stream, with `error` when it was not a clean close. */
  end(error?: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    try {
      if (error === undefined) this.#controller.close();
      else this.#controller.error(error);
    } catch { /* the reader cancelled already */ }
  }
}

/** The error a close code means for the reader: none for a clean close. */
export function closeError(code: number, reason: string): Error | undefined {
  // 1000 normal, 1001 going away, 1005 no code given: the peer hung up on purpose.
  if (code === 1000 || code === 1001 || code === 1005) return undefined;
  return new Error(`WebSocket closed with code ${code}${reason ? `: ${reason}` : ""}`);
}

/**
 * A `Conn` over an open standard `WebSocket` (its `binaryType` is set to
 * `arraybuffer` here).
 */
class StandardWebSocketConn implements Conn {
  readonly readable: ReadableStream<Uint8Array>;
  readonly remoteAddr: string;
  readonly transport = "ws";
  readonly secure: boolean;
  #ws: WebSocket;
  #inbox: MessageInbox;
  /** The pending look at `bufferedAmount` while a write waits; cleared on close. */
  #poll: ReturnType<typeof setTimeout> | undefined;
  #pollMs = 0;
  #drained: PromiseWithResolvers<void> | undefined;

  constructor(ws: WebSocket, remoteAddr: string, messageBytesMax: number, secure: boolean) {
    this.#ws = ws;
    this.remoteAddr = remoteAddr;
    this.secure = secure;
    ws.binaryType = "arraybuffer";
    this.#inbox = new MessageInbox(messageBytesMax, () => this.close());
    this.readable = this.#inbox.readable;
    ws.addEventListener("message", (e) => {
      if (this.#inbox.push((e as MessageEvent).data)) return;
      try {
        ws.close(WS_CLOSE_TOO_BIG, "message too big");
      } catch { /* closing already */ }
    });
    ws.addEventListener("close", (e) => {
      const c = e as CloseEvent;
      this.#stopWaiting();
      this.#inbox.end(closeError(c.code, c.reason));
    });
  }

  async write(bytes: Uint8Array): Promise<void> {
    const ws = this.#ws;
    for (let off = 0; off < bytes.length; off += WS_SEND_BYTES_MAX) {
      if (ws.readyState !== WebSocket.OPEN) throw new Error("write to a closed WebSocket");
      // send() copies (the standard queues the data as it is now), so the
      // caller may reuse `bytes` once this resolves.
      ws.send(bytes.subarray(off, Math.min(bytes.length, off + WS_SEND_BYTES_MAX)));
      if (ws.bufferedAmount > WS_BUFFERED_BYTES_HIGH) {
        this.#drained = Promise.withResolvers();
        this.#pollMs = 0;
        this.#look();
        await this.#drained.promise;
      }
    }
  }

  close(): void {
    this.#stopWaiting();
    this.#inbox.end();
    const ws = this.#ws;
    if (ws.readyState === WebSocket.CLOSING || ws.readyState === WebSocket.CLOSED) return;
    try {
      ws.close(WS_CLOSE_NORMAL);
    } catch { /* closing already */ }
  }

  /** A standard WebSocket has no drain event: look at `bufferedAmount`, backing off. */
  #look = (): void => {
    this.#poll = undefined;
    if (this.#ws.bufferedAmount <= WS_BUFFERED_BYTES_HIGH) {
      this.#drained?.resolve();
      this.#drained = undefined;
      return;
    }
    this.#poll = setTimeout(this.#look, this.#pollMs);
    this.#pollMs = Math.min(Math.max(1, this.#pollMs * 2), WS_DRAIN_POLL_MS_MAX);
  };

  #stopWaiting(): void {
    clearTimeout(this.#poll);
    this.#poll = undefined;
    this.#drained?.reject(new Error("the WebSocket closed while writing"));
    this.#drained = undefined;
  }
}

/**
 * A `Conn` over a standard `WebSocket`, open or opening.
 *
 * @param ws the socket
 * @param remoteAddr what `remoteAddr` says
 * @param messageBytesMax largest inbound message taken
 * @param secure whether it runs over TLS (`wss:`)
 */
export function webSocketConn(
  ws: WebSocket,
  remoteAddr: string,
  messageBytesMax: number,
  secure = false,
): Conn {
  return new StandardWebSocketConn(ws, remoteAddr, messageBytesMax, secure);
}
