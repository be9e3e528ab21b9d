/**
 * UDP ingest in a cluster: a datagram's `PUB` to a queue or a declared topic
 * another node leads goes to that leader, as a TCP client's does
 * (docs/CLUSTERING.md). The
 * ingest is one routed connection of the node (the router of src/cluster/
 * forward.ts: one upstream proxy connection per leader node, shared by every
 * datagram), so per message there is no promise, closure or connection.
 *
 * UDP is fire-and-forget: nobody hears the leader's answer. What was handed
 * to a leader is counted (`forwarded`), and what was not stored as far as
 * this node knows (`forward_dropped`: no leader reachable, more than
 * `CLUSTER_PROXY_PENDING_MAX` waiting for one leader, or the leader's `ERR`,
 * `UNAVAILABLE` included, whose outcome is unknown). Bytes waiting for one
 * leader are bounded by `CLUSTER_PROXY_PENDING_BYTES_MAX` (past it the
 * proxy connection is cut and what waited on it is counted dropped).
 *
 * @module
 */
import type { Broker } from "../broker/mod.ts";
import type { ErrorCode, PubFrame } from "../protocol/mod.ts";
import type { Answers } from "./answers.ts";
import { PublishRoute } from "./publish_route.ts";
import type { Routing } from "./routing.ts";

/** The broker client id of the UDP ingest's routed connection: apart from TCP and gRPC ids. */
const UDP_CLIENT_ID = 2 ** 41;

/** The ingest's forwarding of queue publishes to their leaders. */
export class UdpForward implements Answers {
  /** Messages handed to another node's leader. */
  forwarded = 0;
  /** Messages not stored at a leader as far as this node knows (see the module comment). */
  dropped = 0;
  #route: PublishRoute;
  /** Set while a command is handed to the router: a refusal answered at once is not forwarded. */
  #handing = false;
  #refusedNow = false;

  constructor(routing: Routing, broker: Broker) {
    // The datagram's AUTH line was checked (the one UDP credential): nothing more to refuse.
    this.#route = new PublishRoute(routing, broker, UDP_CLIENT_ID);
  }

  /**
   * True when `f` went to the leader of its queue or declared topic (or was
   * refused on its way there, and counted), false when it is to be
   * published here: a plain topic, one this node serves, a queue this node
   * leads, or a queue nobody leads yet (the node's store holds it while this
   * node claims the queue, as for any local publish). A declared topic
   * nobody leads yet (or that this node is recovering) is refused, and
   * counted dropped: published here it would be a plain topic's message,
   * which the topic's log never holds (`PublishRoute.pubNow`).
   */
  pub(f: PubFrame): boolean {
    this.#handing = true;
    this.#refusedNow = false;
    const routed = this.#route.pubNow(f, this, 0);
    this.#handing = false;
    if (routed && !this.#refusedNow) this.forwarded++;
    return routed;
  }

  answer(_i: number, code: ErrorCode | undefined, _text: string): void {
    if (code === undefined) return;
    this.dropped++;
    if (this.#handing) this.#refusedNow = true;
  }

  /** The ingest stopped: its upstreams close. */
  close(): void {
    this.#route.close();
  }
}
