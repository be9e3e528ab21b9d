/**
 * UDP ingest (`--udp-port`): fire-and-forget publishing for metrics and
 * telemetry senders that cannot afford a connection. Another front end to the
 * same broker: each datagram holds one or more whole `PUB` frames of the
 * wire protocol, parsed by the same pure parser and published through the
 * same `Broker.publishFrom` as a TCP `PUB`. Nothing is ever answered.
 *
 * A datagram is all or nothing: if any frame in it is bad (not a `PUB`, a
 * bad option, a frame cut by the datagram's end, a payload over the limit),
 * none of it is published, and it is counted as bad. A datagram carries no
 * connection state: no `CONNECT`, no `verbose`, no subscriptions. With
 * authentication on, every datagram starts with `AUTH <udp-token>\r\n`
 * (compared in constant time); one without it is counted and dropped.
 *
 * @module
 */
import type { Broker } from "../broker/mod.ts";
import { type Frame, Parser } from "../protocol/mod.ts";
import { listenUdp, sha256, timingSafeEqual, type UdpListener } from "../runtime/mod.ts";
import type { Routing } from "./routing.ts";
import { UdpForward } from "./udp_forward.ts";

/** What the ingest counted (`/api/stats` `udp`, `relayr_udp_*` metrics). */
export interface UdpStats {
  port: number;
  /** Datagrams received. */
  datagrams: number;
  /** Messages published from them. */
  published: number;
  /** Datagrams dropped whole: a bad frame, not a `PUB`, or a frame cut by the datagram's end. */
  bad: number;
  /** Datagrams dropped for a missing or wrong `AUTH` line (auth on). */
  unauthorized: number;
  /** Messages the broker refused (a full queue, a failing store): lost, as UDP may lose them. */
  refused: number;
  /** Cluster mode only: messages sent on to the leader of their queue, on another node. */
  forwarded?: number;
  /**
   * Cluster mode only: queue messages not stored at their leader as far as
   * this node knows (no leader reachable, too many waiting, its `ERR`; udp_forward.ts).
   */
  forward_dropped?: number;
}

/** Options of the ingest. */
export interface UdpIngestOptions {
  hostname: string;
  port: number;
  payloadBytesMax: number;
  /** With authentication on: the token each datagram starts with. */
  token: string | undefined;
  /** Cluster mode: publishes to a queue led elsewhere go to its leader (udp_forward.ts). */
  routing?: Routing;
}

const AUTH_PREFIX = new TextEncoder().encode("AUTH ");

/** The UDP front end of one broker. */
export class UdpIngest {
  readonly counters: Omit<UdpStats, "port" | "forwarded" | "forward_dropped"> = {
    datagrams: 0,
    published: 0,
    bad: 0,
    unauthorized: 0,
    refused: 0,
  };
  #broker: Broker;
  #parser: Parser;
  #frames: Frame[] = [];
  #tokenDigest: Uint8Array | undefined;
  #listener: UdpListener | undefined;
  #options: UdpIngestOptions;
  #forward: UdpForward | undefined;
  /** Bound once: a store's refusal of an fsync'd publish is counted without a closure per message. */
  #onRefused = () => {
    this.counters.refused++;
  };

  constructor(broker: Broker, options: UdpIngestOptions) {
    this.#broker = broker;
    this.#parser = new Parser({ payloadBytesMax: options.payloadBytesMax });
    this.#tokenDigest = options.token === undefined
      ? undefined
      : sha256(new TextEncoder().encode(options.token));
    this.#options = options;
    this.#forward = options.routing && new UdpForward(options.routing, broker);
  }

  /** Binds the port; rejects when it cannot (the caller says which flag). */
  async start(): Promise<void> {
    const { hostname, port } = this.#options;
    this.#listener = await listenUdp({ hostname, port }, (bytes) => this.datagram(bytes));
  }

  /** The bound port (0 before `start`). */
  get port(): number {
    return this.#listener?.port ?? 0;
  }

  /** Stops receiving. */
  async close(): Promise<void> {
    await this.#listener?.close();
    this.#forward?.close();
  }

  /** The figures for stats and metrics. */
  stats(): UdpStats {
    const f = this.#forward;
    const s: UdpStats = { port: this.port, ...this.counters };
    if (f !== undefined) {
      s.forwarded = f.forwarded;
      s.forward_dropped = f.dropped;
    }
    return s;
  }

  /** Handles one datagram: every frame in it is a whole `PUB`, or nothing is published. */
  datagram(bytes: Uint8Array): void {
    const c = this.counters;
    c.datagrams++;
    let body = bytes;
    if (this.#tokenDigest !== undefined) {
      body = this.#authenticated(bytes)!;
      if (body === undefined) {
        c.unauthorized++;
        return;
      }
    }
    const parser = this.#parser;
    const frames = this.#frames;
    frames.length = 0;
    parser.reset();
    parser.push(body, frames);
    if (!parser.idle || frames.length === 0) return void c.bad++;
    for (let i = 0; i < frames.length; i++) if (frames[i].op !== "PUB") return void c.bad++;
    const broker = this.#broker;
    const forward = this.#forward;
    broker.tick();
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i];
      if (f.op !== "PUB" || forward?.pub(f) === true) continue;
      try {
        const r = broker.publishFrom(f.dest, f.buf, f.off, f.len, f.options);
        if (typeof r !== "number") r.catch(this.#onRefused);
        c.published++;
      } catch {
        c.refused++;
      }
    }
    frames.length = 0; // drop the references to this datagram's bytes
  }

  /** The datagram after a valid `AUTH <token>` line, or undefined. */
  #authenticated(bytes: Uint8Array): Uint8Array | undefined {
    const lf = bytes.indexOf(10);
    if (lf < 0 || lf > 1024) return undefined;
    for (let i = 0; i < AUTH_PREFIX.length; i++) if (bytes[i] !== AUTH_PREFIX[i]) return undefined;
    const end = lf > 0 && bytes[lf - 1] === 13 ? lf - 1 : lf;
    const given = sha256(bytes.subarray(AUTH_PREFIX.length, end));
    return timingSafeEqual(given, this.#tokenDigest!) ? bytes.subarray(lf + 1) : undefined;
  }
}
