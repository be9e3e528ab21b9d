/**
 * The gRPC front end: service relayr.v1.Broker (docs/relayr.proto) on its own
 * port, translating each call into the same broker calls a TCP connection
 * makes. Every call passes the gate (calls.ts: counted, authenticated, its
 * errors mapped to statuses with the broker's code); the publish side
 * (publishing.ts) and the subscribe side (subscribing.ts) serve the calls;
 * this file binds, stops, reports and reviews them.
 *
 * @module
 */
import { Server, ServerCredentials, setLogger } from "@grpc/grpc-js";
import type { Review } from "../auth/mod.ts";
import type { Broker } from "../broker/mod.ts";
import {
  GRPC_KEEPALIVE_TIMEOUT_MS,
  GRPC_RECEIVE_BYTES_MAX,
  GRPC_STREAMS_MAX,
  SHUTDOWN_FLUSH_MS,
} from "../config/mod.ts";
import { bufferView, type Timer, type TlsFiles } from "../runtime/mod.ts";
import { authorize, type Principal, principalOf } from "./auth.ts";
import { CallGate } from "./calls.ts";
import { type GrpcError, GrpcRefusal, toGrpcError } from "./errors.ts";
import { Front, type GrpcOptions } from "./front.ts";
import { Inbox } from "./inbox.ts";
import { serverServiceDefinition } from "./proto.ts";
import { Publishing } from "./publishing.ts";
import type { GrpcStats } from "./stats.ts";
import { Subscribing } from "./subscribing.ts";
import { type DeclareRequest, toDeclare } from "./validate.ts";

/** The gRPC listener. */
export class GrpcFront {
  readonly broker: Broker;
  #front: Front;
  #gate: CallGate;
  #pubs: Publishing;
  #subs: Subscribing;
  #server: Server;
  #inbox: Inbox;
  #port = 0;

  constructor(broker: Broker, options: GrpcOptions) {
    this.broker = broker;
    const front = this.#front = new Front(broker, options);
    // grpc-js writes its own diagnostics to stderr (a failed bind as a second
    // line beside ours): they go to our log, at debug, instead. Process-wide,
    // as grpc-js's logger is.
    const debug = (...args: unknown[]) =>
      options.log?.("debug", "grpc-js: {text}", { text: args.join(" ") });
    setLogger({ error: debug, info: debug, debug });
    this.#inbox = new Inbox(front.nextId(), broker);
    this.#gate = new CallGate(options, () => this.#admitStream());
    this.#pubs = new Publishing(front, this.#gate, this.#inbox);
    this.#subs = new Subscribing(front, this.#gate);
    this.#server = new Server({
      "grpc.max_receive_message_length": GRPC_RECEIVE_BYTES_MAX,
      "grpc.keepalive_time_ms": options.pingIntervalMs,
      "grpc.keepalive_timeout_ms": GRPC_KEEPALIVE_TIMEOUT_MS,
    });
  }

  /** The bound port. */
  get port(): number {
    return this.#port;
  }

  /** Binds and serves; rejects when the port cannot be bound. */
  async start(): Promise<void> {
    const gate = this.#gate;
    const pubs = this.#pubs;
    const subs = this.#subs;
    this.#server.addService(serverServiceDefinition(), {
      Publish: gate.unary("Publish", pubs.publish.bind(pubs)),
      PublishStream: gate.stream("PublishStream", pubs.stream.bind(pubs)),
      Subscribe: gate.stream("Subscribe", subs.stream.bind(subs)),
      Request: gate.unary("Request", pubs.request.bind(pubs)),
      Declare: gate.unary("Declare", (p, r: DeclareRequest) => this.#declare(p, r)),
      Unsubscribe: gate.unary("Unsubscribe", subs.unsubscribe.bind(subs)),
      Stats: gate.unary("Stats", () => this.#statsCall()),
    });
    const { hostname, port, tls } = this.#front.options;
    this.#port = await new Promise<number>((resolve, reject) => {
      this.#server.bindAsync(
        `${hostname}:${port}`,
        credentials(tls),
        (err, bound) => err === null ? resolve(bound) : reject(bindError(err)),
      );
    });
    this.#inbox.open();
  }

  /**
   * Graceful stop: Subscribe streams end with UNAVAILABLE (SHUTTING_DOWN),
   * their unacked messages going back; waiting Requests fail; calls in
   * progress get up to `SHUTDOWN_FLUSH_MS`, then the server is forced shut.
   */
  async shutdown(): Promise<void> {
    if (this.#front.stopping) return;
    this.#front.stopping = true;
    this.#subs.closeAll(shuttingDown);
    this.#pubs.failAll(shuttingDown);
    this.#inbox.close(new GrpcRefusal("SHUTTING_DOWN", "the server is stopping"));
    let timer: Timer | undefined;
    await Promise.race([
      new Promise<void>((r) => this.#server.tryShutdown(() => r())),
      new Promise<void>((r) => timer = this.broker.clock.after(SHUTDOWN_FLUSH_MS, r)),
    ]);
    timer?.cancel();
    this.#server.forceShutdown();
  }

  /** Figures for /api/stats and /metrics. */
  stats(): GrpcStats {
    const sent = this.#subs.sent();
    return {
      port: this.#port,
      subscribe_streams: this.#subs.streams.size,
      publish_streams: this.#pubs.streams.size,
      requests_waiting: this.#inbox.size,
      calls: { ...this.#gate.calls },
      errors: { ...this.#gate.errors },
      closed_by_reason: { ...this.#front.closedByReason },
      in_msgs: this.#pubs.msgsIn,
      in_bytes: this.#pubs.bytesIn,
      out_msgs: sent.msgs,
      out_bytes: sent.bytes,
    };
  }

  /**
   * A reload's verdict on the open streams, as on TCP connections: a revoked
   * user's streams end (UNAUTHENTICATED, AUTH_REVOKED; a subscription's
   * unacked messages go back), an updated one's take the new rules.
   */
  review(review: Review): void {
    const verdict = (p: Principal): Principal | null | undefined => {
      if (p.of === undefined) return undefined;
      const next = review(p.of);
      return next === null ? null : next === p.of ? undefined : principalOf(next);
    };
    const why = (p: Principal) =>
      `user ${JSON.stringify(p.user)} was removed or its credential changed`;
    this.#subs.review(verdict, why);
    this.#pubs.review(verdict, why);
    this.#front.users.retain((p) => review(p) !== null);
  }

  #admitStream(): void {
    if (this.#front.stopping) throw new GrpcRefusal("SHUTTING_DOWN", "the server is stopping");
    if (this.#subs.streams.size + this.#pubs.streams.size >= GRPC_STREAMS_MAX) {
      throw new GrpcRefusal("LIMIT", `at most ${GRPC_STREAMS_MAX} gRPC streams`);
    }
  }

  async #declare(p: Principal, r: DeclareRequest): Promise<Record<string, never>> {
    const { dest, options } = toDeclare(r);
    authorize(p, "admin", dest);
    this.broker.tick();
    await this.#pubs.declare(dest, options);
    return {};
  }

  #statsCall(): Record<string, unknown> {
    const s = this.#front.options.serverStats();
    return {
      server_id: s.server_id,
      version: s.version,
      published_msgs: s.published_msgs,
      connections: s.connections,
      grpc_streams: this.#subs.streams.size + this.#pubs.streams.size,
      queues: s.queues,
      topics: s.topics,
      json: JSON.stringify({ ...s, grpc: this.stats() }),
    };
  }
}

/**
 * The listener's credentials: with `--tls-cert` the same certificate as the
 * TCP port (and with `--tls-ca` a client certificate required, mTLS);
 * plaintext h2c otherwise.
 */
function credentials(tls: TlsFiles | undefined): ServerCredentials {
  if (tls === undefined) return ServerCredentials.createInsecure();
  const pem = (text: string) => bufferView(encoder.encode(text)) as Buffer;
  return ServerCredentials.createSsl(
    tls.ca === undefined ? null : pem(tls.ca),
    [{ private_key: pem(tls.key), cert_chain: pem(tls.cert) }],
    tls.ca !== undefined,
  );
}

const encoder = new TextEncoder();

/**
 * grpc-js reports a failed bind as one message ("No address added out of
 * total 1 resolved ... EADDRINUSE ..."): the code is lifted out of it so that
 * the start-up error names the reason as for the other ports.
 */
function bindError(err: Error): Error {
  const code = /\b(EADDRINUSE|EACCES|EADDRNOTAVAIL)\b/.exec(err.message)?.[1];
  return code === undefined ? err : Object.assign(new Error(err.message), { code });
}

function shuttingDown(): GrpcError {
  return toGrpcError(new GrpcRefusal("SHUTTING_DOWN", "the server is stopping"));
}
